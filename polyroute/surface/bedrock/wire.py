"""The Converse request, as far as polyroute maps it (unknown fields are skipped here, and
still forwarded to a Bedrock upstream, which gets the client's body as it came)."""

from __future__ import annotations

from typing import Any

import msgspec


class _Wire(msgspec.Struct, rename="camel", omit_defaults=True):
    pass


class ImageSource(_Wire):
    bytes: str | None = None
    """Base64, as every blob in Bedrock's JSON."""
    s3_location: dict[str, Any] | None = None


class Image(_Wire):
    format: str
    source: ImageSource


class ToolUse(_Wire):
    tool_use_id: str
    name: str
    input: Any = None


class ToolResultPart(_Wire):
    text: str | None = None
    json: Any = None


class ToolResult(_Wire):
    tool_use_id: str
    content: list[ToolResultPart] = msgspec.field(default_factory=list)
    status: str | None = None


class Block(_Wire):
    text: str | None = None
    image: Image | None = None
    tool_use: ToolUse | None = None
    tool_result: ToolResult | None = None
    cache_point: dict[str, Any] | None = None
    reasoning_content: dict[str, Any] | None = None
    document: dict[str, Any] | None = None
    video: dict[str, Any] | None = None
    guard_content: dict[str, Any] | None = None


class Message(_Wire):
    role: str
    content: list[Block]


class SystemBlock(_Wire):
    text: str | None = None
    cache_point: dict[str, Any] | None = None
    guard_content: dict[str, Any] | None = None


class InferenceConfig(_Wire):
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop_sequences: list[str] | None = None


class ToolSpec(_Wire):
    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class Tool(_Wire):
    tool_spec: ToolSpec | None = None
    cache_point: dict[str, Any] | None = None


class ToolConfig(_Wire):
    tools: list[Tool]
    tool_choice: dict[str, Any] | None = None


class ConverseRequest(_Wire):
    messages: list[Message] = msgspec.field(default_factory=list)
    system: list[SystemBlock] | None = None
    inference_config: InferenceConfig | None = None
    tool_config: ToolConfig | None = None
    additional_model_request_fields: dict[str, Any] | None = None
    guardrail_config: dict[str, Any] | None = None
    prompt_variables: dict[str, Any] | None = None


REQUEST_DECODER = msgspec.json.Decoder(ConverseRequest)
