"""Google's Gemini API: the key in ``x-goog-api-key``, no options."""

from polyroute.adapters.gemini.serves import serves
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


SPEC = ProtocolSpec(name="gemini", adapter="polyroute.adapters.gemini.adapter:GeminiAdapter",
                    auth="x-goog-api-key", support=SUPPORT,
                    # image models (adapters/gemini/media.py), TTS and models that hear
                    # audio (speech.py, transcripts.py), all through generateContent;
                    # which model and which options, serves.py
                    endpoints=frozenset({"images.generations", "images.edits",
                                         "audio.transcriptions", "audio.translations",
                                         "audio.speech"}), serves=serves)
