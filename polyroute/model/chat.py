"""The canonical chat request, response and stream chunk.

The shape follows OpenAI's chat-completions schema because it is the lingua franca every
vendor's protocol can be mapped onto, but these are polyroute's own types: adapters translate
vendor wire formats to and from them.

``passthrough`` keeps the client's original top-level JSON fields (undecoded) so that a request
arriving in the same protocol as its upstream is forwarded with nothing lost — parameters the
gateway does not model yet (``logprobs``, ``prediction``, vendor extensions …) survive untouched.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from polyroute.model.names import FallbackModels, ModelName
from polyroute.model.usage import Usage

Role = str  # "system" | "developer" | "user" | "assistant" | "tool" — vendors add more

# Integer bounds, checked when a client's request is decoded: a negative or absurd token
# limit or answer count would void the reservations made from it (and may not even fit the
# shared limiter's arithmetic), so it is refused with a 400 before anything counts it.
MAX_OUTPUT_TOKENS_LIMIT = 2**31 - 1
OutputTokens = Annotated[int, msgspec.Meta(ge=1, le=MAX_OUTPUT_TOKENS_LIMIT)]
Choices = Annotated[int, msgspec.Meta(ge=1, le=128)]
"""``n``: OpenAI's own limit."""
TopK = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
Seed = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class FunctionCall(msgspec.Struct, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class ToolCall(msgspec.Struct, omit_defaults=True):
    id: str | None = None
    type: str | None = None
    """"function" when sent. Not a default: omit_defaults would then drop it from every
    encoding, and OpenAI requires it on the tool calls of an assistant message it is sent
    (stream deltas carry it on a call's first fragment only)."""
    function: FunctionCall | None = None
    index: int | None = None
    extra_content: dict[str, Any] | None = None
    """Vendor data that must come back with the call, in Google's OpenAI-compatible shape:
    ``{"google": {"thought_signature": "…"}}``. Gemini 3 refuses a conversation whose
    function calls lost their thought signatures, and an OpenAI client sends its assistant
    message back as it received it, so the signature rides along here."""


class ContentPart(msgspec.Struct, omit_defaults=True):
    """A multimodal content part. Unknown part kinds keep their payload in ``extra`` fields."""

    type: str
    text: str | None = None
    image_url: dict[str, Any] | None = None
    input_audio: dict[str, Any] | None = None
    file: dict[str, Any] | None = None
    refusal: str | None = None
    cache_control: dict[str, Any] | None = None
    """A prompt-cache breakpoint on this part (Anthropic's ``{"type": "ephemeral"}``), in the
    place OpenRouter and LiteLLM accept it in OpenAI's dialect."""


class ThinkingBlock(msgspec.Struct, omit_defaults=True):
    """One block of a model's extended thinking (Anthropic). ``signature`` (or, for a redacted
    block, ``data``) is opaque and must be sent back unchanged with the assistant turn that
    carried it; OpenAI's dialect has no such thing, so this is LiteLLM's ``thinking_blocks``
    shape."""

    type: str = "thinking"  # "thinking" | "redacted_thinking"
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


class Message(msgspec.Struct, omit_defaults=True):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None
    # Extended thinking has no OpenAI equivalent: the text goes where DeepSeek and vLLM put
    # reasoning (``reasoning_content``), the blocks with their signatures alongside.
    reasoning_content: str | None = None
    thinking_blocks: list[ThinkingBlock] | None = None


class NativeBody(msgspec.Struct, frozen=True):
    """A client's request in a dialect other than OpenAI chat, kept for the one upstream
    protocol that speaks it: that protocol's adapter forwards ``fields`` with only the model
    replaced (and the output cap, when the policy lowered it); every other adapter translates
    the typed fields and ignores this."""

    protocol: str
    """The upstream protocol (a provider's ``protocol:``) these fields are already in."""
    fields: dict[str, msgspec.Raw]
    """The client's top-level JSON fields, undecoded (empty when the whole body goes as it
    came, as Bedrock's, whose model is in the URL)."""
    body: bytes = b""
    """The client's body itself, so that a forwarded body differs from it in the replaced
    values alone, byte for byte."""
    untranslatable: str | None = None
    """Why the typed fields do not hold the whole request (a built-in tool, an input item
    polyroute does not translate): then only ``protocol``'s deployments may take it, and a
    request no such deployment can serve is refused with this message."""
    untranslatable_param: str | None = None


class StreamOptions(msgspec.Struct, omit_defaults=True):
    include_usage: bool = False


class ChatRequest(msgspec.Struct, omit_defaults=True):
    messages: list[Message]
    model: ModelName = ""
    models: FallbackModels | None = None
    """OpenRouter-style fallbacks: models to try, in order, after ``model``'s own."""
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: OutputTokens | None = None
    max_completion_tokens: OutputTokens | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: Choices | None = None
    stop: str | list[str] | None = None
    seed: Seed | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    # Beyond OpenAI's own schema, for vendors that have them (Anthropic, and OpenAI-compatible
    # servers such as vLLM that accept top_k):
    top_k: TopK | None = None
    reasoning_effort: str | None = None
    thinking: dict[str, Any] | None = None
    """Anthropic's extended-thinking configuration, e.g. ``{"type": "enabled",
    "budget_tokens": 2048}``."""
    # Not part of the wire schema: the original fields, see the module docstring.
    continue_final: bool = msgspec.field(default=False, name="$polyroute.continue_final")
    """The last message is an assistant's partial answer for the upstream to continue (set by
    the engine when it resumes a broken stream, never by a client). Anthropic and Bedrock
    continue a final assistant message by themselves; OpenAI-compatible servers need the
    provider's ``quirks.continuation`` to say how."""
    passthrough: dict[str, msgspec.Raw] | None = msgspec.field(
        default=None, name="$polyroute.passthrough")  # a key no client sends
    native: NativeBody | None = msgspec.field(default=None, name="$polyroute.native")
    """The body of a client of another dialect (Responses, Bedrock Converse), for its own
    protocol's upstreams; ``passthrough`` is OpenAI chat's alone."""

    @property
    def wants_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


FinishReason = str  # "stop" | "length" | "tool_calls" | "content_filter" | vendor-specific


class Choice(msgspec.Struct, omit_defaults=True):
    index: int
    message: Message
    finish_reason: FinishReason | None = None


class ChatResponse(msgspec.Struct, omit_defaults=True):
    id: str = ""
    model: str = ""
    choices: list[Choice] = msgspec.field(default_factory=list)
    created: int = 0
    usage: Usage | None = None
    system_fingerprint: str | None = None
    # The upstream's exact bytes when they are already in the client's dialect, so the surface
    # can relay them verbatim instead of re-encoding.
    raw: bytes | None = None
    native: bytes | None = None
    """``raw`` of another dialect: set only when the request came as a :class:`NativeBody`
    and reached its own protocol, so only that dialect's surface ever sees it."""


class Delta(msgspec.Struct, omit_defaults=True):
    role: Role | None = None
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None
    reasoning_content: str | None = None  # see Message
    thinking_blocks: list[ThinkingBlock] | None = None


class ChunkChoice(msgspec.Struct, omit_defaults=True):
    index: int
    delta: Delta
    finish_reason: FinishReason | None = None


class ChatChunk(msgspec.Struct, omit_defaults=True):
    id: str = ""
    model: str = ""
    choices: list[ChunkChoice] = msgspec.field(default_factory=list)
    created: int = 0
    usage: Usage | None = None
    system_fingerprint: str | None = None
    raw: bytes | None = None
    native: bytes | None = None
    """The upstream's event bytes in the client's own dialect (see ``ChatResponse.native``)."""

    @property
    def finished(self) -> bool:
        return any(c.finish_reason for c in self.choices)
