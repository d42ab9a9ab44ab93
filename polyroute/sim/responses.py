"""POST /v1/responses: OpenAI's Responses API, stateless (``store`` is accepted, nothing is
kept). The answer is the chat simulator's (text, echo or a forced function call), in the
Responses object and its stream events; mid-stream, ``stream_cut`` closes the connection.
The bytes sent are kept in ``stats.last_response``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from aiohttp import web

from polyroute.sim import errors
from polyroute.sim.common_headers import openai_headers
from polyroute.sim.connection import close_connection
from polyroute.sim.fault_responses import fault_response
from polyroute.sim.fault_selection import select_fault
from polyroute.sim.faults import FaultName
from polyroute.sim.replies import Reply, build_reply, prompt_tokens
from polyroute.sim.request_schema import (
    ChatMessage,
    ChatRequest,
    FunctionDefinition,
    NamedFunction,
    NamedToolChoice,
    ToolDefinition,
    decode_object,
)
from polyroute.sim.state import SimState, get_state

_encode = msgspec.json.Encoder().encode


class _Part(msgspec.Struct):
    type: str
    text: str | None = None


class _Item(msgspec.Struct):
    type: str = "message"
    role: str | None = None
    content: str | list[_Part] | None = None
    output: str | None = None


class _Tool(msgspec.Struct):
    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ResponsesRequest(msgspec.Struct):
    model: str
    input: str | list[_Item]
    instructions: str | None = None
    tools: list[_Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    max_output_tokens: int | None = None
    stream: bool | None = False


def _decode(body: bytes) -> ResponsesRequest:
    raw = decode_object(body)
    if not isinstance(raw.get("model"), str) or not raw["model"]:
        raise errors.missing_model()
    if "input" not in raw:
        raise errors.missing_parameter("input")
    try:
        return msgspec.convert(raw, ResponsesRequest)
    except msgspec.ValidationError as exc:
        raise errors.invalid_type(f"Invalid request: {exc}", None) from None


def _text(content: str | list[_Part] | None) -> str:
    if isinstance(content, list):
        return "".join(p.text or "" for p in content if p.type in ("input_text", "output_text"))
    return content or ""


def as_chat(request: ResponsesRequest) -> ChatRequest:
    """The same request in chat form, which the simulated model answers."""
    messages = [ChatMessage("system", request.instructions)] if request.instructions else []
    if isinstance(request.input, str):
        messages.append(ChatMessage("user", request.input))
    else:
        for item in request.input:
            if item.type == "message":
                messages.append(ChatMessage(item.role or "user", _text(item.content)))
            elif item.type == "function_call_output":
                messages.append(ChatMessage("tool", item.output or ""))
    tools = [ToolDefinition(FunctionDefinition(t.name, t.description, t.parameters))
             for t in request.tools or () if t.type == "function" and t.name]
    choice: str | NamedToolChoice | None = None
    if isinstance(request.tool_choice, str):
        choice = request.tool_choice
    elif isinstance(request.tool_choice, dict):
        choice = NamedToolChoice(NamedFunction(str(request.tool_choice.get("name", ""))))
    return ChatRequest(model=request.model, messages=messages, tools=tools or None,
                       tool_choice=choice, max_completion_tokens=request.max_output_tokens)


class _Answer:
    """One response's objects, as the API shows them while streaming and when done."""

    def __init__(self, state: SimState, model: str, reply: Reply, prompt: int) -> None:
        self.id = state.ids.response_id()
        self.model = model
        self.created = int(time.time())
        self.reply = reply
        self.prompt = prompt
        call = reply.tool_call
        self.item_id = state.ids.item_id("fc" if call is not None else "msg")

    def item(self, done: bool) -> dict[str, Any]:
        status = "completed" if done else "in_progress"
        call = self.reply.tool_call
        if call is not None:
            return {"type": "function_call", "id": self.item_id, "call_id": call.call_id,
                    "name": call.name, "arguments": call.arguments if done else "",
                    "status": status}
        content = [self.part(done)] if done else []
        return {"type": "message", "id": self.item_id, "role": "assistant",
                "status": status, "content": content}

    def part(self, done: bool) -> dict[str, Any]:
        return {"type": "output_text", "text": self.reply.text if done else "",
                "annotations": [], "logprobs": []}

    def response(self, done: bool) -> dict[str, Any]:
        length = done and self.reply.finish_reason == "length"
        tokens = self.reply.completion_tokens
        usage = {"input_tokens": self.prompt, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": tokens, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": self.prompt + tokens}
        return {
            "id": self.id, "object": "response", "created_at": self.created,
            "status": ("incomplete" if length else "completed") if done else "in_progress",
            "background": False, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if length else None,
            "instructions": None, "max_output_tokens": None, "model": self.model,
            "output": [self.item(True)] if done else [], "parallel_tool_calls": True,
            "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
            "store": False, "temperature": 1.0, "text": {"format": {"type": "text"}},
            "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
            "usage": usage if done else None, "metadata": {},
        }

    def events(self) -> list[bytes]:
        """Every event of the stream, numbered."""
        payloads: list[dict[str, Any]] = [
            {"type": "response.created", "response": self.response(False)},
            {"type": "response.in_progress", "response": self.response(False)},
            {"type": "response.output_item.added", "output_index": 0,
             "item": self.item(False)}]
        where = {"item_id": self.item_id, "output_index": 0}
        call = self.reply.tool_call
        if call is None:
            payloads.append({"type": "response.content_part.added", **where,
                             "content_index": 0, "part": self.part(False)})
            payloads += [{"type": "response.output_text.delta", **where, "content_index": 0,
                          "delta": piece, "logprobs": []} for piece in self.reply.pieces]
            payloads += [
                {"type": "response.output_text.done", **where, "content_index": 0,
                 "text": self.reply.text, "logprobs": []},
                {"type": "response.content_part.done", **where, "content_index": 0,
                 "part": self.part(True)}]
        else:
            payloads += [{"type": "response.function_call_arguments.delta", **where,
                          "delta": piece} for piece in self.reply.pieces]
            payloads.append({"type": "response.function_call_arguments.done", **where,
                             "arguments": call.arguments, "name": call.name})
        payloads.append({"type": "response.output_item.done", "output_index": 0,
                         "item": self.item(True)})
        final = "response.incomplete" if self.reply.finish_reason == "length" else (
            "response.completed")
        payloads.append({"type": final, "response": self.response(True)})
        return [b"event: " + p["type"].encode() + b"\ndata: "
                + _encode({"type": p["type"], "sequence_number": n, **p}) + b"\n\n"
                for n, p in enumerate(payloads)]


async def create_response(request: web.Request) -> web.StreamResponse:
    state = get_state(request)
    settings = state.settings
    wire = _decode(await request.read())
    chat = as_chat(wire)
    reply = build_reply(chat, chat.model, default_text=settings.text,
                        chunk_tokens=settings.chunk_tokens, new_call_id=state.ids.tool_call_id)
    model, fault = select_fault(request, state, wire.model)
    state.stats.record_selection(model, fault)
    prompt = prompt_tokens(chat)
    if fault is not None:
        early = await fault_response(request, fault, model=model, prompt_tokens=prompt,
                                     param="input")
        if early is not None:
            return early
    answer = _Answer(state, model, reply, prompt)
    headers = openai_headers(state, model)
    if not wire.stream:
        body = _encode(answer.response(True))
        state.stats.last_response = body
        return web.Response(body=body, content_type="application/json", headers=headers)
    response = web.StreamResponse(headers=headers)
    response.headers["Content-Type"] = "text/event-stream; charset=utf-8"
    await response.prepare(request)
    cut_after = fault.int_param("after_chunks") if fault is not None \
        and fault.name is FaultName.STREAM_CUT else None
    tps = settings.tokens_per_second
    gap_s = max(1, settings.chunk_tokens) / tps if tps > 0 else 0.0
    sent: list[bytes] = []
    deltas = 0
    state.stats.streams_started += 1
    for event in answer.events():
        is_delta = b".delta\n" in event[:64]
        if is_delta:
            if cut_after is not None and deltas >= cut_after:
                state.stats.responses_cut_by_sim += 1
                close_connection(request)
                return response
            deltas += 1
            if gap_s:
                await asyncio.sleep(gap_s)
        sent.append(event)
        state.stats.last_response = b"".join(sent)
        await response.write(event)
    await response.write_eof()
    state.stats.streams_completed += 1
    return response
