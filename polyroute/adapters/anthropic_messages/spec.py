"""Anthropic's Messages protocol: the key in ``x-api-key``; a final assistant message is a
prefill the model continues."""

from polyroute.adapters.spec import ProtocolSpec
from polyroute.adapters.support import Support

SUPPORT = Support(
    vendor="Anthropic",
    mapped=frozenset({
        "messages", "model", "models", "stream", "stream_options", "max_tokens",
        "max_completion_tokens", "temperature", "top_p", "top_k", "stop", "tools", "tool_choice",
        "parallel_tool_calls", "response_format", "user", "thinking", "reasoning_effort",
    }),
    why={
        "n": "it returns one answer per request",
        "logprobs": "it returns no token log-probabilities",
        "top_logprobs": "it returns no token log-probabilities",
        "logit_bias": "it has no token biasing",
        "seed": "its sampling cannot be seeded",
        "presence_penalty": "it has no repetition penalties",
        "frequency_penalty": "it has no repetition penalties",
        "audio": "it produces no audio",
        "modalities": "it produces text only",
        "prediction": "it has no predicted outputs",
    },
    typed=("n", "seed", "presence_penalty", "frequency_penalty"),
)
"""What of a chat request Anthropic can carry; anything else a client sent in OpenAI's dialect is a
400 naming it, unless the provider's ``quirks.drop_params`` lists it."""


SPEC = ProtocolSpec(
    name="anthropic",
    adapter="polyroute.adapters.anthropic_messages.adapter:AnthropicMessagesAdapter",
    auth="x-api-key",
    continuation="assistant_prefill",
    support=SUPPORT,
)
