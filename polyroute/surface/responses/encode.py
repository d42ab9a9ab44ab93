"""Canonical answers → Responses API objects and stream events."""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec

from polyroute.errors import GatewayError
from polyroute.model.chat import ChatChunk, ChatResponse
from polyroute.model.usage import Usage

_encode = msgspec.json.Encoder().encode

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def error_body(exc: GatewayError) -> bytes:
    """Errors keep OpenAI's shape: the Responses API uses the same error object."""
    return _encode({"error": {"message": exc.message, "type": exc.type, "param": exc.param,
                              "code": exc.code}})


def usage_object(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens,
                                 "cache_write_tokens": usage.cache_creation_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }


def response_object(
    response_id: str, model: str, created: int, output: list[dict[str, Any]],
    finish: str | None, usage: Usage | None, status: str | None = None,
) -> dict[str, Any]:
    reason = _INCOMPLETE.get(finish or "")
    return {
        "id": response_id, "object": "response", "created_at": created,
        "status": status or ("incomplete" if reason else "completed"),
        "error": None,
        "incomplete_details": {"reason": reason} if reason else None,
        "model": model, "output": output, "parallel_tool_calls": True,
        "tool_choice": "auto", "tools": [], "usage": usage_object(usage),
        "metadata": {}, "text": {"format": {"type": "text"}}, "truncation": "disabled",
    }


def text_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"type": "message", "id": item_id, "role": "assistant", "status": status,
            "content": content if status == "completed" or text else []}


def call_item(item_id: str, call_id: str, name: str, arguments: str,
              status: str = "completed") -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": name,
            "arguments": arguments, "status": status}


def response_body(response: ChatResponse, response_id: str | None = None) -> bytes:
    """``response_id``: polyroute's own (a stored response's); by default a new one."""
    if response.native is not None:
        return response.native  # a Responses upstream's own answer, relayed
    output: list[dict[str, Any]] = []
    finish = None
    if response.choices:
        choice = response.choices[0]
        finish = choice.finish_reason
        message = choice.message
        if message.reasoning_content:
            output.append({"type": "reasoning", "id": _id("rs"), "summary": [
                {"type": "summary_text", "text": message.reasoning_content}]})
        text = message.content if isinstance(message.content, str) else "".join(
            p.text or "" for p in message.content or [] if p.type == "text")
        if text or not message.tool_calls:
            output.append(text_item(_id("msg"), text or ""))
        for call in message.tool_calls or []:
            function = call.function
            output.append(call_item(_id("fc"), call.id or _id("call"),
                                    function.name or "" if function else "",
                                    function.arguments or "" if function else ""))
    created = response.created or int(time.time())
    return _encode(response_object(response_id or _id("resp"), response.model, created, output,
                                   finish, response.usage))


class StreamEncoder:
    """Turns canonical chunk batches into the Responses event sequence: response.created,
    output items opened, text and argument deltas, items closed, response.completed."""

    def __init__(self, model: str, response_id: str | None = None) -> None:
        self._model = model
        self._id = response_id or _id("resp")
        self.final: dict[str, Any] | None = None
        """The whole response object, once the stream ended normally."""
        self._created = int(time.time())
        self._seq = 0
        self._output: list[dict[str, Any]] = []
        self._text: dict[str, Any] | None = None  # the open message item
        self._calls: dict[int, dict[str, Any]] = {}  # tool index → open function_call item
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._index_base = 0

    def take_over(self, sequence: int, output_index: int,
                  open_text: tuple[str, str] | None = None) -> None:
        """Continue a relayed stream (:mod:`.relay`): the next event is number ``sequence``.
        With ``open_text`` (the item id and text of the message item the relayed stream left
        open, at ``output_index``), the answer goes on in that item; otherwise the next item
        opened is output ``output_index + 1``."""
        self._seq = sequence
        if open_text is None:
            self._index_base = output_index + 1
            return
        item = text_item(open_text[0], "", status="in_progress")
        self._index_base, self._output = output_index, [item]
        self._text = {"item": item, "index": output_index, "text": open_text[1]}

    def start(self) -> bytes:
        snapshot = self._snapshot("in_progress")
        return (self._event("response.created", {"response": snapshot})
                + self._event("response.in_progress", {"response": snapshot}))

    def feed(self, batch: list[ChatChunk]) -> bytes:
        out: list[bytes] = []
        for chunk in batch:
            if chunk.model:
                self._model = chunk.model
            if chunk.usage is not None:
                self._usage = chunk.usage
            for choice in chunk.choices:
                if choice.index != 0:
                    continue  # the Responses API has one output per response
                delta = choice.delta
                if delta.content:
                    out.append(self._text_delta(delta.content))
                for call in delta.tool_calls or []:
                    out.append(self._call_delta(call.index or 0, call.id,
                                                call.function.name if call.function else None,
                                                call.function.arguments if call.function
                                                else None))
                if choice.finish_reason:
                    self._finish = choice.finish_reason
        return b"".join(out)

    def finish(self) -> bytes:
        closing = self._close_all()
        snapshot = self.final = self._snapshot(None)
        kind = "response.completed" if snapshot["status"] == "completed" else (
            "response.incomplete")
        return closing + self._event(kind, {"response": snapshot})

    def fail(self, exc: GatewayError) -> bytes:
        """``response.failed``, then an ``error`` event carrying an ``error`` object: OpenAI's
        SDKs raise on it, so a cut answer never passes for a complete one."""
        snapshot = self._snapshot("failed")
        snapshot["error"] = {"code": "server_error", "message": exc.message}
        detail = {"message": exc.message, "type": exc.type, "param": exc.param,
                  "code": exc.code}
        return (self._event("response.failed", {"response": snapshot})
                + self._event("error", {"code": exc.code, "message": exc.message,
                                        "param": exc.param, "error": detail}))

    def _text_delta(self, text: str) -> bytes:
        out = b""
        if self._text is None:
            item = text_item(_id("msg"), "", status="in_progress")
            self._text = {"item": item, "index": self._index_base + len(self._output),
                          "text": ""}
            self._output.append(item)
            out += self._event("response.output_item.added",
                               {"output_index": self._text["index"], "item": item})
            out += self._event("response.content_part.added", {
                "item_id": item["id"], "output_index": self._text["index"], "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []}})
        self._text["text"] += text
        return out + self._event("response.output_text.delta", {
            "item_id": self._text["item"]["id"], "output_index": self._text["index"],
            "content_index": 0, "delta": text, "logprobs": []})

    def _call_delta(self, index: int, call_id: str | None, name: str | None,
                    arguments: str | None) -> bytes:
        out = b""
        open_call = self._calls.get(index)
        if open_call is None:
            out += self._close_text()
            item = call_item(_id("fc"), call_id or _id("call"), name or "", "",
                             status="in_progress")
            open_call = self._calls[index] = {"item": item,
                                              "index": self._index_base + len(self._output)}
            self._output.append(item)
            out += self._event("response.output_item.added",
                               {"output_index": open_call["index"], "item": item})
        if arguments:
            open_call["item"]["arguments"] += arguments
            out += self._event("response.function_call_arguments.delta", {
                "item_id": open_call["item"]["id"], "output_index": open_call["index"],
                "delta": arguments})
        return out

    def _close_text(self) -> bytes:
        text = self._text
        if text is None:
            return b""
        self._text = None
        item, index = text["item"], text["index"]
        done = text_item(item["id"], text["text"])
        self._output[index - self._index_base] = done
        part = done["content"][0]
        return (self._event("response.output_text.done", {
                    "item_id": item["id"], "output_index": index, "content_index": 0,
                    "text": text["text"], "logprobs": []})
                + self._event("response.content_part.done", {
                    "item_id": item["id"], "output_index": index, "content_index": 0,
                    "part": part})
                + self._event("response.output_item.done", {"output_index": index,
                                                            "item": done}))

    def _close_all(self) -> bytes:
        out = self._close_text()
        for open_call in self._calls.values():
            item, index = open_call["item"], open_call["index"]
            item["status"] = "completed"
            out += self._event("response.function_call_arguments.done", {
                "item_id": item["id"], "output_index": index, "arguments": item["arguments"],
                "name": item["name"]})
            out += self._event("response.output_item.done", {"output_index": index,
                                                             "item": item})
        self._calls.clear()
        return out

    def _snapshot(self, status: str | None) -> dict[str, Any]:
        return response_object(self._id, self._model, self._created, list(self._output),
                               self._finish, self._usage if status is None else None, status)

    def _event(self, kind: str, payload: dict[str, Any]) -> bytes:
        payload = {"type": kind, "sequence_number": self._seq, **payload}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + _encode(payload) + b"\n\n"
