"""What the simulated Claude answers, and the usage it reports.

The answer comes from the OpenAI endpoints' own reply builder (the same text, echo and forced
tool calls), so one conversation gets equivalent answers from both protocols. Anthropic's
additions are layered on: stop sequences, a thinking block when thinking is on, and a prompt
cache that turns ``cache_control`` breakpoints into cache writes and, on a repeat, reads.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import msgspec

from polyroute.sim import request_schema as openai_schema
from polyroute.sim.anthropic.errors import invalid
from polyroute.sim.anthropic.request import Block, MessagesRequest
from polyroute.sim.anthropic.state import AnthropicState
from polyroute.sim.errors import ApiError
from polyroute.sim.replies import build_reply
from polyroute.sim.tokens import count_tokens, group_tokens, split_tokens

THINKING_TEXT = "The user wants an answer. I will give it plainly."
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True)
class ToolUse:
    id: str
    name: str
    arguments: str
    """The input as JSON text, streamed in these fragments."""
    fragments: list[str]


@dataclass(frozen=True)
class Answer:
    text_pieces: list[str]
    tool_use: ToolUse | None
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int
    thinking_pieces: list[str] = field(default_factory=list)
    signature: str = ""

    @property
    def text(self) -> str:
        return "".join(self.text_pieces)


@dataclass(frozen=True)
class PromptUsage:
    input_tokens: int
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0

    @property
    def cache_write(self) -> int:
        return self.cache_write_5m + self.cache_write_1h


def build_answer(
    request: MessagesRequest, model: str, state: AnthropicState, *, default_text: str,
    chunk_tokens: int,
) -> Answer:
    try:
        reply = build_reply(_as_openai(request), model, default_text=default_text,
                            chunk_tokens=chunk_tokens, new_call_id=state.tool_use_id,
                            continues_prefill=True)
    except ApiError as exc:
        raise invalid(exc.message) from None
    thinking = group_tokens(split_tokens(THINKING_TEXT), chunk_tokens) if request.thinks else []
    signature = state.signature() if request.thinks else ""
    extra = sum(map(count_tokens, thinking))
    if reply.tool_call is not None:
        call = reply.tool_call
        return Answer([], ToolUse(call.call_id, call.name, call.arguments, reply.pieces),
                      "tool_use", None, reply.completion_tokens + extra, thinking, signature)
    pieces, stop_reason, stop_sequence = _apply_stop_sequences(
        reply.pieces, request.stop_sequences or [], _STOP_REASONS[reply.finish_reason])
    output = sum(map(count_tokens, pieces)) + extra
    return Answer(pieces, None, stop_reason, stop_sequence, output, thinking, signature)


def _apply_stop_sequences(
    pieces: list[str], stops: list[str], stop_reason: str
) -> tuple[list[str], str, str | None]:
    text = "".join(pieces)
    hits = [(text.find(s), s) for s in stops if s and s in text]
    if not hits:
        return pieces, stop_reason, None
    cut, sequence = min(hits)
    kept, length = [], 0
    for piece in pieces:
        if length + len(piece) > cut:
            if cut > length:
                kept.append(piece[: cut - length])
            break
        kept.append(piece)
        length += len(piece)
    return kept, "stop_sequence", sequence


def _as_openai(request: MessagesRequest) -> openai_schema.ChatRequest:
    """The request as the OpenAI reply builder reads it. A user turn holding only tool results
    is what OpenAI calls tool messages, so echo models skip it as they skip those."""
    messages = [openai_schema.ChatMessage("system", _text(request.system_blocks()))]
    for turn in request.messages:
        blocks = turn.blocks()
        role = turn.role
        if role == "user" and blocks and all(b.type == "tool_result" for b in blocks):
            role = "tool"
        messages.append(openai_schema.ChatMessage(role, _text(blocks)))
    tools = [openai_schema.ToolDefinition(openai_schema.FunctionDefinition(
        t.name, t.description, t.input_schema)) for t in request.tools or ()]
    choice: str | openai_schema.NamedToolChoice | None = None
    if request.tool_choice is not None:
        kind = request.tool_choice.type
        if kind == "tool":
            choice = openai_schema.NamedToolChoice(
                openai_schema.NamedFunction(request.tool_choice.name or ""))
        else:
            choice = {"any": "required", "auto": "auto", "none": "none"}.get(kind, kind)
    return openai_schema.ChatRequest(
        model=request.model, messages=messages, tools=tools or None, tool_choice=choice,
        max_tokens=request.max_tokens)


def _text(blocks: list[Block]) -> str:
    return "".join(b.plain_text() for b in blocks)


def count_prompt(request: MessagesRequest) -> int:
    """Every token of the prompt, cached or not (what count_tokens answers)."""
    return sum(count_tokens(piece) for piece, _ in _prompt_pieces(request))


def prompt_usage(request: MessagesRequest, state: AnthropicState) -> PromptUsage:
    """Tokens of the prompt, split like Anthropic's usage: cache reads, cache writes (by TTL)
    and the rest. The prompt is read in cache order — tools, system, messages — and every
    ``cache_control`` marks the end of a prefix that can be cached."""
    total = 0
    digest = hashlib.blake2b(request.model.encode())
    breakpoints: list[tuple[int, str, str]] = []  # (tokens so far, prefix digest, ttl)
    for piece, cache_control in _prompt_pieces(request):
        total += count_tokens(piece)
        digest.update(piece.encode())
        if cache_control is not None:
            breakpoints.append((total, digest.hexdigest(), str(cache_control.get("ttl", "5m"))))
    read = 0
    for tokens, prefix, _ in breakpoints:
        if state.cached(prefix):
            read = tokens
    write_5m = write_1h = 0
    if breakpoints:
        tokens, prefix, ttl = breakpoints[-1]
        if tokens > read:
            if ttl == "1h":
                write_1h = tokens - read
            else:
                write_5m = tokens - read
        for _, each, _ in breakpoints:
            state.write(each)
    return PromptUsage(total - read - write_5m - write_1h, read, write_5m, write_1h)


def _prompt_pieces(request: MessagesRequest) -> list[tuple[str, dict[str, object] | None]]:
    pieces: list[tuple[str, dict[str, object] | None]] = []
    for tool in request.tools or ():
        schema = _ENCODER.encode(tool.input_schema or {}).decode()
        pieces.append((f"{tool.name} {tool.description or ''} {schema}", tool.cache_control))
    for block in request.system_blocks():
        pieces.append((block.plain_text(), block.cache_control))
    for turn in request.messages:
        for block in turn.blocks():
            text = block.plain_text()
            if block.type == "tool_use":
                text = f"{block.name} {_ENCODER.encode(block.input or {}).decode()}"
            pieces.append((text, block.cache_control))
    return pieces
