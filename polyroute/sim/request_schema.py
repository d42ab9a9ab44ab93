"""The parts of OpenAI request bodies the simulator reads; everything else is ignored."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from polyroute.sim import errors

_DECODER = msgspec.json.Decoder()

_T = TypeVar("_T")
MAX_CHOICES = 128


class ContentPart(msgspec.Struct):
    type: str
    text: str | None = None


class ChatMessage(msgspec.Struct):
    role: str
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if self.content is None:
            return ""
        return "".join(part.text or "" for part in self.content if part.type == "text")


class FunctionDefinition(msgspec.Struct):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolDefinition(msgspec.Struct):
    function: FunctionDefinition
    type: str = "function"


class NamedFunction(msgspec.Struct):
    name: str


class NamedToolChoice(msgspec.Struct):
    function: NamedFunction
    type: str = "function"


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class ChatRequest(msgspec.Struct):
    model: str
    messages: list[ChatMessage]
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: str | NamedToolChoice | None = None
    n: int | None = 1
    logprobs: bool | None = None
    top_logprobs: int | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None

    @property
    def streaming(self) -> bool:
        return bool(self.stream)

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def choice_count(self) -> int:
        return self.n or 1

    @property
    def token_limit(self) -> int | None:
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return self.max_tokens


class EmbeddingRequest(msgspec.Struct):
    model: str
    # str, list[str], list[int] or list[list[int]]: msgspec unions cannot hold several
    # array types, so the shape is checked by hand in the handler.
    input: Any
    dimensions: int | None = None
    encoding_format: str | None = "float"


def decode_object(body: bytes) -> dict[str, Any]:
    try:
        value = _DECODER.decode(body)
    except msgspec.DecodeError:
        raise errors.invalid_json() from None
    if not isinstance(value, dict):
        raise errors.invalid_json()
    return value


def _convert(raw: dict[str, Any], kind: type[_T]) -> _T:
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        raise errors.invalid_type(f"Invalid request: {exc}", _error_param(str(exc))) from None


def _error_param(message: str) -> str | None:
    # msgspec reports the location as "... - at `$.messages[0].role`".
    _, sep, where = message.rpartition("at `$.")
    if not sep:
        return None
    return where.rstrip("`")


def decode_chat_request(body: bytes) -> ChatRequest:
    raw = decode_object(body)
    if not isinstance(raw.get("model"), str) or not raw["model"]:
        raise errors.missing_model()
    if "messages" not in raw:
        raise errors.missing_parameter("messages")
    request = _convert(raw, ChatRequest)
    if not request.messages:
        raise errors.ApiError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    if not 1 <= request.choice_count <= MAX_CHOICES:
        raise errors.ApiError(
            400,
            f"Invalid 'n': must be between 1 and {MAX_CHOICES}.",
            param="n",
            code="invalid_value",
        )
    return request


def decode_embedding_request(body: bytes) -> EmbeddingRequest:
    raw = decode_object(body)
    if not isinstance(raw.get("model"), str) or not raw["model"]:
        raise errors.missing_model()
    if "input" not in raw:
        raise errors.missing_parameter("input")
    return _convert(raw, EmbeddingRequest)
