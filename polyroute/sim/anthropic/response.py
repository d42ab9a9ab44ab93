"""Response objects, field for field (and in key order) as Anthropic sends them."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from polyroute.sim.anthropic.reply import Answer, PromptUsage

ENCODER = msgspec.json.Encoder()


class CacheCreation(msgspec.Struct):
    ephemeral_5m_input_tokens: int
    ephemeral_1h_input_tokens: int


class Usage(msgspec.Struct, kw_only=True):
    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cache_creation: CacheCreation
    output_tokens: int
    service_tier: str = "standard"


class DeltaUsage(msgspec.Struct, kw_only=True):
    """message_delta's usage: cumulative counts."""

    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    output_tokens: int


def usage(prompt: PromptUsage, output_tokens: int) -> Usage:
    return Usage(
        input_tokens=prompt.input_tokens,
        cache_creation_input_tokens=prompt.cache_write,
        cache_read_input_tokens=prompt.cache_read,
        cache_creation=CacheCreation(prompt.cache_write_5m, prompt.cache_write_1h),
        output_tokens=output_tokens,
    )


def delta_usage(prompt: PromptUsage, output_tokens: int) -> DeltaUsage:
    return DeltaUsage(input_tokens=prompt.input_tokens,
                      cache_creation_input_tokens=prompt.cache_write,
                      cache_read_input_tokens=prompt.cache_read, output_tokens=output_tokens)


class Message(msgspec.Struct, kw_only=True):
    id: str
    type: str = "message"
    role: str = "assistant"
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    stop_sequence: str | None
    usage: Usage


def content_blocks(answer: Answer) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if answer.thinking_pieces:
        blocks.append({"type": "thinking", "thinking": "".join(answer.thinking_pieces),
                       "signature": answer.signature})
    if answer.text_pieces:
        blocks.append({"type": "text", "text": answer.text})
    if answer.tool_use is not None:
        call = answer.tool_use
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name,
                       "input": msgspec.json.decode(call.arguments)})
    return blocks


def message_body(message_id: str, model: str, answer: Answer, prompt: PromptUsage) -> bytes:
    return ENCODER.encode(Message(
        id=message_id, model=model, content=content_blocks(answer),
        stop_reason=answer.stop_reason, stop_sequence=answer.stop_sequence,
        usage=usage(prompt, answer.output_tokens)))


def event(kind: str, data: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + ENCODER.encode(data) + b"\n\n"


class MessageDelta(msgspec.Struct):
    stop_reason: str
    stop_sequence: str | None


class MessageDeltaEvent(msgspec.Struct, kw_only=True):
    type: str = "message_delta"
    delta: MessageDelta
    usage: DeltaUsage


class StartEvent(msgspec.Struct, kw_only=True):
    type: str = "message_start"
    message: Message


class BlockEvent(msgspec.Struct, kw_only=True):
    type: str
    index: int
    content_block: dict[str, Any] | UnsetType = UNSET
    delta: dict[str, Any] | UnsetType = UNSET
