"""The parts of Anthropic's response and stream-event bodies polyroute reads.

Decoding is deliberately lenient — one struct per shape with every field optional — so that a
block or event type added by Anthropic later is skipped rather than failing the answer.
Tool inputs stay undecoded (``msgspec.Raw``): they become OpenAI's JSON-string ``arguments``
byte for byte.
"""

from __future__ import annotations

import msgspec

VERSION = "2023-06-01"
"""The ``anthropic-version`` every request carries unless the provider's headers set one."""


class CacheCreation(msgspec.Struct):
    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0


class OutputTokensDetails(msgspec.Struct):
    thinking_tokens: int | None = None


class Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    output_tokens_details: OutputTokensDetails | None = None


class Block(msgspec.Struct):
    """A content block of any type; which fields are set depends on ``type``."""

    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    """Empty when absent (msgspec.Raw cannot share a union with None)."""
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


class Message(msgspec.Struct):
    id: str = ""
    model: str = ""
    content: list[Block] = msgspec.field(default_factory=list)
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: Usage | None = None


class ErrorDetail(msgspec.Struct):
    type: str = "api_error"
    message: str = ""


class ErrorBody(msgspec.Struct):
    error: ErrorDetail | None = None


class Delta(msgspec.Struct):
    """``content_block_delta``'s and ``message_delta``'s ``delta``."""

    type: str | None = None
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None
    signature: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None


class Event(msgspec.Struct):
    """One server-sent event's data, whatever its ``type``."""

    type: str
    message: Message | None = None
    index: int | None = None
    content_block: Block | None = None
    delta: Delta | None = None
    usage: Usage | None = None
    error: ErrorDetail | None = None


class ModelEntry(msgspec.Struct):
    id: str


class ModelList(msgspec.Struct):
    data: list[ModelEntry]
    has_more: bool = False
    last_id: str | None = None


MESSAGE_DECODER = msgspec.json.Decoder(Message)
EVENT_DECODER = msgspec.json.Decoder(Event)
ERROR_DECODER = msgspec.json.Decoder(ErrorBody)
MODEL_LIST_DECODER = msgspec.json.Decoder(ModelList)
ENCODER = msgspec.json.Encoder()
