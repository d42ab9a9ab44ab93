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
from polyroute.model.tools import ImageURL, ResponseFormat, Tool, ToolChoice
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
    image_url: ImageURL | None = None
    input_audio: dict[str, Any] | None = None
    file: dict[str, Any] | None = None
    refusal: str | None = None
    cache_control: dict[str, Any] | None = None
    """A prompt-cache breakpoint on this part (Anthropic's ``{"type": "ephemeral"}``), in the
    place OpenRouter and LiteLLM accept it in OpenAI's dialect."""

    def __post_init__(self) -> None:
        # Every dialect's image needs its URL; refused here, in the client's dialect, rather
        # than by whichever adapter reads it first.
        if self.type == "image_url" and self.image_url is None:
            raise ValueError("an image_url part needs its image_url object")


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


class StreamOptions(msgspec.Struct, omit_defaults=True):
    include_usage: bool = False


class NativeRequest(msgspec.Struct):
    """A request in a dialect that is also an upstream protocol (Anthropic's Messages,
    Gemini's generateContent, OpenAI's Responses, Bedrock's Converse), kept as the client
    sent it so that an upstream of that ``protocol`` gets it forwarded with only the model
    changed: fields, blocks and parts
    polyroute does not model (``container``, ``mcp_servers``, server tools, thought
    signatures …) survive. Set by the surface, read by that protocol's adapter
    (:mod:`polyroute.adapters.passthrough`)."""

    protocol: str
    """The upstream protocol that speaks the client's dialect (a ``protocol:`` name)."""
    fields: dict[str, msgspec.Raw]
    """The client's top-level JSON fields, undecoded (empty when the whole body goes as it
    came, as Bedrock's and Gemini's, whose model is in the URL)."""
    body: bytes = b""
    """The client's body exactly (the fields are slices of it): sent as it is when nothing in
    it changes (Gemini's model is in the URL)."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    """Client headers that belong to the dialect (``anthropic-beta``), forwarded with it."""
    untranslatable: str | None = None
    """The first thing in the request that the canonical model cannot carry (its ``param``),
    and ``why``: any other protocol refuses the request with it, this one forwards it."""
    why: str = ""


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
    # Typed once here (polyroute.model.tools), so no adapter checks their shape again.
    tools: list[Tool] | None = None
    tool_choice: str | ToolChoice | None = None
    """``auto``, ``none``, ``required`` (a string) or the object form."""
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    logprobs: bool | None = None
    """Token log-probabilities in the answer (OpenAI-compatible upstreams); a cascade's
    logprobs judge asks for them itself."""
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
    native: NativeRequest | None = msgspec.field(default=None, name="$polyroute.native")
    """The request as a non-OpenAI client sent it, see :class:`NativeRequest`."""

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
    """The upstream's exact body when the request was passed through natively (its dialect
    is the upstream's protocol: Anthropic, Gemini, Responses, Bedrock Converse): ``raw`` is
    OpenAI's, set by every OpenAI upstream. Only that dialect's surface ever reads it."""


# A stream's chunk types are not tracked by the garbage collector (``gc=False``): a stream
# builds three per event, and none can be part of a reference cycle (they hold strings,
# numbers and lists of one another, downwards only). Tracking cost a tenth of their decoding
# and made the young generation fill up faster.
class Delta(msgspec.Struct, omit_defaults=True, gc=False):
    role: Role | None = None
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None
    reasoning_content: str | None = None  # see Message
    thinking_blocks: list[ThinkingBlock] | None = None


class ChunkChoice(msgspec.Struct, omit_defaults=True, gc=False):
    index: int
    delta: Delta
    finish_reason: FinishReason | None = None


class ChatChunk(msgspec.Struct, omit_defaults=True, gc=False):
    id: str = ""
    model: str = ""
    choices: list[ChunkChoice] = msgspec.field(default_factory=list)
    created: int = 0
    usage: Usage | None = None
    system_fingerprint: str | None = None
    raw: bytes | None = None
    native: bytes | None = None
    """In a stream passed through natively: the upstream's event bytes this chunk stands for
    (with those of events before it that stood for no chunk, such as pings); ``b""`` when an
    earlier chunk of the same event carried them. None: translate the chunk."""

    @property
    def finished(self) -> bool:
        return any(c.finish_reason for c in self.choices)
