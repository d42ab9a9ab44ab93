"""Google's Gemini API: the key in ``x-goog-api-key``, no options."""

from polyroute.adapters.spec import ProtocolSpec
from polyroute.adapters.support import Support

SUPPORT = Support(
    vendor="Gemini",
    mapped=frozenset({
        "messages", "model", "models", "stream", "stream_options", "max_tokens",
        "max_completion_tokens", "temperature", "top_p", "top_k", "n", "stop", "seed",
        "presence_penalty", "frequency_penalty", "tools", "tool_choice", "parallel_tool_calls",
        "response_format", "user", "reasoning_effort", "thinking",
    }),
    why={
        "logprobs": "token log-probabilities are not translated",
        "top_logprobs": "token log-probabilities are not translated",
        "logit_bias": "it has no token biasing",
        "audio": "chat answers carry no audio here",
        "modalities": "chat answers carry text only here",
        "prediction": "it has no predicted outputs",
        "parallel_tool_calls": "it cannot be told to make one call at a time",
    },
    serial_tool_calls=False,
)
"""What of a chat request Gemini can carry; anything else a client sent in OpenAI's dialect is a
400 naming it, unless the provider's ``quirks.drop_params`` lists it."""


def serves(endpoint: str, model: str) -> str | None:
    """Gemini's API answers every media endpoint through ``generateContent``, but each model
    gives one kind of output: an image model (``…-image``) images, a TTS model (``…-tts``)
    speech only, the others text (a transcript). Its model ids say which."""
    name = model.lower()
    if endpoint.startswith("images."):
        return None if "image" in name else f"'{model}' is not a Gemini image model"
    if endpoint == "audio.speech":
        return None if "tts" in name else f"'{model}' is not a Gemini TTS model"
    if "tts" in name or "image" in name:
        return f"'{model}' does not write text"
    return None


SPEC = ProtocolSpec(name="gemini", adapter="polyroute.adapters.gemini.adapter:GeminiAdapter",
                    auth="x-goog-api-key", support=SUPPORT,
                    # image models (adapters/gemini/media.py), TTS and models that hear
                    # audio (speech.py, transcripts.py), all through generateContent
                    endpoints=frozenset({"images.generations", "images.edits",
                                         "audio.transcriptions", "audio.translations",
                                         "audio.speech"}), serves=serves)
