"""The parts of Gemini's response bodies polyroute reads.

Decoding is lenient — every field optional, unknown ones skipped — so that a part kind or a
field Google adds later is ignored rather than failing the answer. Function-call arguments stay
undecoded (``msgspec.Raw``): they become OpenAI's JSON-string ``arguments`` byte for byte.
"""

from __future__ import annotations

import msgspec


class _Wire(msgspec.Struct, rename="camel"):
    pass


class FunctionCall(_Wire):
    name: str = ""
    args: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    """Empty when absent (msgspec.Raw cannot share a union with None)."""
    id: str | None = None


class Part(_Wire):
    text: str | None = None
    thought: bool | None = None
    thought_signature: str | None = None
    function_call: FunctionCall | None = None


class Content(_Wire):
    parts: list[Part] = msgspec.field(default_factory=list)
    role: str | None = None


class Candidate(_Wire):
    content: Content | None = None
    finish_reason: str | None = None
    finish_message: str | None = None
    index: int = 0


class PromptFeedback(_Wire):
    block_reason: str | None = None
    block_reason_message: str | None = None


class UsageMetadata(_Wire):
    prompt_token_count: int | None = None
    candidates_token_count: int | None = None
    total_token_count: int | None = None
    thoughts_token_count: int | None = None
    cached_content_token_count: int | None = None
    tool_use_prompt_token_count: int | None = None


class Response(_Wire):
    """A ``GenerateContentResponse``: a whole answer, or one chunk of a stream."""

    candidates: list[Candidate] = msgspec.field(default_factory=list)
    prompt_feedback: PromptFeedback | None = None
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None


class ErrorDetail(msgspec.Struct):
    type: str = msgspec.field(default="", name="@type")
    reason: str | None = None
    retry_delay: str | None = msgspec.field(default=None, name="retryDelay")


class Error(msgspec.Struct):
    code: int = 0
    message: str = ""
    status: str = ""
    details: list[ErrorDetail] = msgspec.field(default_factory=list)


class ErrorBody(msgspec.Struct):
    error: Error | None = None


class Embedding(msgspec.Struct):
    values: list[float] = msgspec.field(default_factory=list)


class EmbedResponse(msgspec.Struct):
    embeddings: list[Embedding] = msgspec.field(default_factory=list)


class ModelEntry(_Wire):
    name: str
    supported_generation_methods: list[str] = msgspec.field(default_factory=list)


class ModelList(_Wire):
    models: list[ModelEntry] = msgspec.field(default_factory=list)
    next_page_token: str | None = None


RESPONSE_DECODER = msgspec.json.Decoder(Response)
ERROR_DECODER = msgspec.json.Decoder(ErrorBody)
ERROR_LIST_DECODER = msgspec.json.Decoder(list[ErrorBody])
EMBED_DECODER = msgspec.json.Decoder(EmbedResponse)
MODEL_LIST_DECODER = msgspec.json.Decoder(ModelList)
ANY_DECODER = msgspec.json.Decoder()
ENCODER = msgspec.json.Encoder()
