"""What the simulated Gemini answers, and the usage it reports.

The answer comes from the OpenAI endpoints' own reply builder (the same text, echo and forced
tool calls), so one conversation gets equivalent answers from every protocol. Gemini's
additions are layered on: stop sequences, JSON mode (an example object for the schema), thought
summaries when asked for, thought signatures on function calls, several candidates, and an
implicit prompt cache that reports a repeated prompt prefix as cached tokens.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import msgspec

from polyroute.sim import request_schema as openai_schema
from polyroute.sim.errors import ApiError
from polyroute.sim.gemini.errors import invalid
from polyroute.sim.gemini.request import Content, GenerateContentRequest
from polyroute.sim.gemini.state import GeminiState
from polyroute.sim.replies import build_reply
from polyroute.sim.tokens import count_tokens, group_tokens, split_tokens
from polyroute.sim.tool_arguments import argument_fragments, example_arguments

THOUGHT_TEXT = "The user wants an answer. I will give it plainly."
MIN_CACHED_TOKENS = 1024
"""Gemini caches a prompt prefix implicitly only from this many tokens on (2.5 Flash's
minimum), so short test prompts never report cached tokens by surprise."""
_ENCODER = msgspec.json.Encoder()
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}


@dataclass(frozen=True)
class Call:
    name: str
    arguments: str
    """The args object as JSON text."""
    signature: str


@dataclass(frozen=True)
class Answer:
    text_pieces: list[str]
    call: Call | None
    finish_reason: str
    output_tokens: int
    thought_pieces: list[str] = field(default_factory=list)
    thought_tokens: int = 0


@dataclass(frozen=True)
class PromptUsage:
    tokens: int
    cached: int = 0


def build_answer(
    request: GenerateContentRequest, model: str, state: GeminiState, *, default_text: str,
    chunk_tokens: int,
) -> Answer:
    config = request.config
    try:
        reply = build_reply(_as_openai(request, model), model, default_text=default_text,
                            chunk_tokens=chunk_tokens, new_call_id=lambda: "")
    except ApiError as exc:
        raise invalid(exc.message) from None
    thinking = config.thinking_config
    thinks = thinking is not None and (thinking.include_thoughts or thinking.thinking_budget)
    thought_tokens = count_tokens(THOUGHT_TEXT) if thinks else 0
    thoughts = (group_tokens(split_tokens(THOUGHT_TEXT), chunk_tokens)
                if thinking is not None and thinking.include_thoughts else [])
    if reply.tool_call is not None:
        call = Call(reply.tool_call.name, reply.tool_call.arguments, state.thought_signature())
        return Answer([], call, "STOP", len(argument_fragments(call.arguments)), thoughts,
                      thought_tokens)
    pieces, finish = reply.pieces, _FINISH[reply.finish_reason]
    if config.response_mime_type == "application/json":
        schema = config.response_json_schema or config.response_schema
        text = (example_arguments(schema) if isinstance(schema, dict)
                else _ENCODER.encode({"text": reply.text}).decode())
        pieces = group_tokens(argument_fragments(text), chunk_tokens)
    pieces, stopped = _apply_stop_sequences(pieces, config.stop_sequences or [])
    output = sum(map(count_tokens, pieces))
    return Answer(pieces, None, "STOP" if stopped else finish, output, thoughts, thought_tokens)


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


def _as_openai(request: GenerateContentRequest, model: str) -> openai_schema.ChatRequest:
    """The request as the OpenAI reply builder reads it. A user turn holding only function
    responses is what OpenAI calls tool messages, so echo models skip it as they skip those."""
    system = request.system_instruction.text() if request.system_instruction else ""
    messages = [openai_schema.ChatMessage("system", system)]
    for content in request.contents:
        role = "assistant" if content.role == "model" else "user"
        if role == "user" and all(p.function_response is not None for p in content.parts):
            role = "tool"
        messages.append(openai_schema.ChatMessage(role, content.text()))
    tools = [openai_schema.ToolDefinition(openai_schema.FunctionDefinition(
        d.name, d.description, d.schema())) for d in request.declarations()]
    choice: str | openai_schema.NamedToolChoice | None = None
    calling = request.tool_config.function_calling_config if request.tool_config else None
    if calling is not None and calling.mode in ("ANY", "VALIDATED") and tools:
        names = calling.allowed_function_names or []
        choice = (openai_schema.NamedToolChoice(openai_schema.NamedFunction(names[0]))
                  if len(names) == 1 else "required")
    elif calling is not None and calling.mode == "NONE":
        choice = "none"
    return openai_schema.ChatRequest(
        model=model, messages=messages, tools=tools or None, tool_choice=choice,
        max_tokens=request.config.max_output_tokens)


def prompt_usage(request: GenerateContentRequest, model: str, state: GeminiState) -> PromptUsage:
    """Every prompt token, and how many of them an earlier request with the same prefix
    (declarations, system instruction and all but the last content) left in the implicit
    cache."""
    prefix_tokens = 0
    digest = hashlib.blake2b(model.encode())
    pieces = [_declarations_text(request)]
    if request.system_instruction is not None:
        pieces.append(_content_text(request.system_instruction))
    for piece in pieces:
        prefix_tokens += count_tokens(piece)
        digest.update(piece.encode())
    for content in request.contents[:-1]:
        text = _content_text(content)
        prefix_tokens += count_tokens(text)
        digest.update(text.encode())
    total = prefix_tokens + count_tokens(_content_text(request.contents[-1]))
    cached = prefix_tokens if prefix_tokens >= MIN_CACHED_TOKENS and state.cached(
        digest.hexdigest()) else 0
    return PromptUsage(total, cached)


def _declarations_text(request: GenerateContentRequest) -> str:
    return " ".join(f"{d.name} {d.description or ''} {_ENCODER.encode(d.schema()).decode()}"
                    for d in request.declarations())


def _content_text(content: Content) -> str:
    texts = []
    for part in content.parts:
        if part.text is not None:
            texts.append(part.text)
        elif part.function_call is not None:
            texts.append(f"{part.function_call.name} "
                         f"{_ENCODER.encode(part.function_call.args or {}).decode()}")
        elif part.function_response is not None:
            texts.append(_ENCODER.encode(part.function_response.response).decode())
        elif part.inline_data is not None:
            texts.append(" media" * part.inline_data.tokens())
        elif part.file_data is not None:
            texts.append(" media" * 258)  # Gemini counts 258 tokens for an image
    return " ".join(texts)
