"""What the simulated Bedrock model answers, and the usage it reports.

The answer comes from the OpenAI endpoints' own reply builder (the same text, echo and forced
tool calls), so one conversation gets equivalent answers from every protocol. Converse's
additions are layered on: stop sequences, structured output (an example object for the
schema), Anthropic-style reasoning when ``thinking`` is enabled, and a prompt cache that turns
``cachePoint`` blocks into cache writes and, on a repeat, reads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import msgspec

from polyroute.sim import request_schema as openai_schema
from polyroute.sim.bedrock.errors import validation
from polyroute.sim.bedrock.request import ConverseRequest
from polyroute.sim.bedrock.state import BedrockState
from polyroute.sim.errors import ApiError
from polyroute.sim.replies import build_reply
from polyroute.sim.tokens import count_tokens, group_tokens, split_tokens
from polyroute.sim.tool_arguments import argument_fragments, example_arguments

REASONING_TEXT = "The user wants an answer. I will give it plainly."
_ENCODER = msgspec.json.Encoder()
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


@dataclass(frozen=True)
class ToolUse:
    id: str
    name: str
    arguments: str
    fragments: list[str]


@dataclass(frozen=True)
class Answer:
    text_pieces: list[str]
    tool_use: ToolUse | None
    stop_reason: str
    output_tokens: int
    reasoning_pieces: list[str] = field(default_factory=list)
    signature: str = ""


@dataclass(frozen=True)
class PromptUsage:
    input_tokens: int
    cache_read: int | None = None
    cache_write: int | None = None


def build_answer(
    request: ConverseRequest, model: str, state: BedrockState, *, default_text: str,
    chunk_tokens: int,
) -> Answer:
    config = request.inference_config
    try:
        reply = build_reply(_as_openai(request, model), model, default_text=default_text,
                            chunk_tokens=chunk_tokens, new_call_id=state.tool_use_id,
                            continues_prefill=True)
    except ApiError as exc:
        raise validation(exc.message) from None
    reasoning = group_tokens(split_tokens(REASONING_TEXT), chunk_tokens) \
        if request.thinking else []
    signature = state.signature() if request.thinking else ""
    extra = sum(map(count_tokens, reasoning))
    if reply.tool_call is not None:
        call = reply.tool_call
        return Answer([], ToolUse(call.call_id, call.name, call.arguments, reply.pieces),
                      "tool_use", reply.completion_tokens + extra, reasoning, signature)
    pieces, stop_reason = reply.pieces, _STOP[reply.finish_reason]
    schema = _output_schema(request)
    if schema is not None:
        pieces = group_tokens(argument_fragments(example_arguments(schema)), chunk_tokens)
    pieces, stopped = _apply_stop_sequences(pieces, (config.stop_sequences if config else None)
                                            or [])
    output = sum(map(count_tokens, pieces)) + extra
    return Answer(pieces, None, "stop_sequence" if stopped else stop_reason, output, reasoning,
                  signature)


def _output_schema(request: ConverseRequest) -> dict[str, object] | None:
    text_format = (request.output_config or {}).get("textFormat")
    if not isinstance(text_format, dict) or text_format.get("type") != "json_schema":
        return None
    definition = (text_format.get("structure") or {}).get("jsonSchema") or {}
    try:
        schema = json.loads(definition.get("schema", ""))
    except (TypeError, ValueError):
        raise validation("outputConfig.textFormat.structure.jsonSchema.schema must be a JSON "
                         "schema in a string.") from None
    if not isinstance(schema, dict):
        raise validation("The JSON schema must be an object.")
    return schema


def _apply_stop_sequences(pieces: list[str], stops: list[str]) -> tuple[list[str], bool]:
    text = "".join(pieces)
    hits = [text.find(s) for s in stops if s and s in text]
    if not hits:
        return pieces, False
    cut = min(hits)
    kept, length = [], 0
    for piece in pieces:
        if length + len(piece) > cut:
            if cut > length:
                kept.append(piece[: cut - length])
            break
        kept.append(piece)
        length += len(piece)
    return kept, True


def _as_openai(request: ConverseRequest, model: str) -> openai_schema.ChatRequest:
    """The request as the OpenAI reply builder reads it. A user turn holding only tool
    results is what OpenAI calls tool messages, so echo models skip it as they skip those."""
    system = "".join(b.text or "" for b in request.system or ())
    messages = [openai_schema.ChatMessage("system", system)]
    for turn in request.messages:
        role = turn.role
        if role == "user" and all(b.tool_result is not None or b.cache_point is not None
                                  for b in turn.content):
            role = "tool"
        messages.append(openai_schema.ChatMessage(role, "".join(b.plain_text()
                                                                for b in turn.content)))
    tools = [openai_schema.ToolDefinition(openai_schema.FunctionDefinition(
        s.name, s.description, s.input_schema.get("json"))) for s in request.specs()]
    choice: str | openai_schema.NamedToolChoice | None = None
    wanted = request.tool_config.tool_choice if request.tool_config else None
    if wanted is not None and "any" in wanted:
        choice = "required"
    elif wanted is not None and isinstance(wanted.get("tool"), dict):
        choice = openai_schema.NamedToolChoice(openai_schema.NamedFunction(
            str(wanted["tool"].get("name"))))
    config = request.inference_config
    return openai_schema.ChatRequest(
        model=model, messages=messages, tools=tools or None, tool_choice=choice,
        max_tokens=config.max_tokens if config else None)


def prompt_usage(request: ConverseRequest, model: str, state: BedrockState) -> PromptUsage:
    """Prompt tokens split like Converse's usage: cache reads, cache writes and the rest. The
    prompt is read in cache order — tools, system, messages — and each ``cachePoint`` marks the
    end of a prefix that can be cached."""
    total = 0
    digest = hashlib.blake2b(model.encode())
    points: list[tuple[int, str]] = []
    pieces: list[tuple[str, bool]] = []
    for tool in request.tool_config.tools if request.tool_config else ():
        spec = tool.tool_spec
        schema = _ENCODER.encode(spec.input_schema).decode() if spec else ""
        text = f"{spec.name} {spec.description or ''} {schema}" if spec else ""
        pieces.append((text, tool.cache_point is not None))
    for block in request.system or ():
        pieces.append((block.text or "", block.cache_point is not None))
    for turn in request.messages:
        for b in turn.content:
            text = b.plain_text()
            if b.tool_use is not None:
                text = f"{b.tool_use.name} {_ENCODER.encode(b.tool_use.input).decode()}"
            elif b.image is not None:
                text = " image" * 1600  # about what a 1 MP image costs
            pieces.append((text, b.cache_point is not None))
    for text, point in pieces:
        total += count_tokens(text)
        digest.update(text.encode())
        if point:
            points.append((total, digest.hexdigest()))
    if not points:
        return PromptUsage(total)
    read = max((tokens for tokens, prefix in points if state.cached(prefix)), default=0)
    tokens, _ = points[-1]
    write = tokens - read if tokens > read else 0
    for _, prefix in points:
        state.write(prefix)
    return PromptUsage(total - read - write, read, write)
