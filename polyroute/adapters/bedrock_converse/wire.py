"""The parts of Bedrock Converse's response bodies and stream events polyroute reads.

Decoding is lenient — every field optional, unknown ones skipped (Bedrock pads stream events
with a random ``"p"`` field, and adds block kinds over time). Tool inputs stay undecoded
(``msgspec.Raw``): they become OpenAI's JSON-string ``arguments`` byte for byte.
"""

from __future__ import annotations

import msgspec


class _Wire(msgspec.Struct, rename="camel"):
    pass


class ToolUse(_Wire):
    tool_use_id: str = ""
    name: str = ""
    input: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    """Empty when absent (msgspec.Raw cannot share a union with None)."""


class ReasoningText(_Wire):
    text: str = ""
    signature: str | None = None


class ReasoningContent(_Wire):
    reasoning_text: ReasoningText | None = None
    redacted_content: str | None = None
    """Base64, as every blob in Bedrock's JSON."""


class Block(_Wire):
    text: str | None = None
    tool_use: ToolUse | None = None
    reasoning_content: ReasoningContent | None = None


class Message(_Wire):
    role: str = "assistant"
    content: list[Block] = msgspec.field(default_factory=list)


class Output(_Wire):
    message: Message | None = None


class Usage(_Wire):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_write_input_tokens: int | None = None


class Response(_Wire):
    output: Output | None = None
    stop_reason: str | None = None
    usage: Usage | None = None


# -- stream events (one JSON payload per eventstream message, named by :event-type) ----------


class ToolUseStart(_Wire):
    tool_use_id: str = ""
    name: str = ""


class BlockStart(_Wire):
    tool_use: ToolUseStart | None = None


class ToolUseDelta(_Wire):
    input: str = ""


class ReasoningDelta(_Wire):
    text: str | None = None
    signature: str | None = None
    redacted_content: str | None = None


class BlockDelta(_Wire):
    text: str | None = None
    tool_use: ToolUseDelta | None = None
    reasoning_content: ReasoningDelta | None = None


class Event(_Wire):
    """Any event's payload; which fields are set depends on its ``:event-type``."""

    role: str | None = None
    content_block_index: int = 0
    start: BlockStart | None = None
    delta: BlockDelta | None = None
    stop_reason: str | None = None
    usage: Usage | None = None


class ErrorBody(msgspec.Struct):
    message: str | None = None
    Message: str | None = None  # some AWS front ends capitalise it


RESPONSE_DECODER = msgspec.json.Decoder(Response)
EVENT_DECODER = msgspec.json.Decoder(Event)
ERROR_DECODER = msgspec.json.Decoder(ErrorBody)
ANY_DECODER = msgspec.json.Decoder()
ENCODER = msgspec.json.Encoder()
