"""Anthropic's Messages protocol: the key in ``x-api-key``; a final assistant message is a
prefill the model continues."""

from polyroute.adapters.spec import ProtocolSpec

SPEC = ProtocolSpec(
    name="anthropic",
    adapter="polyroute.adapters.anthropic_messages.adapter:AnthropicMessagesAdapter",
    auth="x-api-key",
    continuation="assistant_prefill",
)
