"""Pure functions between the canonical model and OpenAI's Responses API. No I/O here.

A canonical request becomes a stateless Responses request (``store: false``; the conversation
rides in ``input``); a Responses client's own body is forwarded with only ``model`` replaced.
Errors have OpenAI's shape, so :mod:`..openai_chat.translate` reads them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from polyroute.adapters.openai_chat.translate import error_from_response, error_from_status
from polyroute.adapters.openai_responses.splice import replace_values
from polyroute.adapters.rejections import unsupported
from polyroute.errors import UpstreamProtocolError
from polyroute.model.chat import (
    ChatRequest,
    ChatResponse,
    Choice,
    ContentPart,
    FunctionCall,
    Message,
    ToolCall,
)
from polyroute.model.tools import (
    FunctionDefinition,
    JSONSchemaFormat,
    ResponseFormat,
    Tool,
    ToolChoice,
)
from polyroute.model.upstream import Quirks
from polyroute.model.usage import CompletionTokensDetails, PromptTokensDetails, Usage

__all__ = ["error_from_response", "error_from_status"]

PROTOCOL = "openai_responses"
VENDOR = "the Responses API"
_encode = msgspec.json.Encoder().encode
_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


def native_fields(request: ChatRequest) -> dict[str, msgspec.Raw] | None:
    """The client's own Responses body, when it may be forwarded as it came. A resumed stream
    (``continue_final``) is built from the typed fields instead."""
    native = request.native
    if native is None or native.protocol != PROTOCOL or request.continue_final:
        return None
    return native.fields


def request_body(request: ChatRequest, model: str, quirks: Quirks, deployment: str) -> bytes:
    native = native_fields(request)
    if native is not None:
        return _forwarded(request, native, model, quirks)
    fields = _responses_fields(request, deployment)
    fields["model"] = model
    if request.stream:
        fields["stream"] = True
    for name in quirks.drop_params.intersection(fields):
        del fields[name]
    return _encode(fields)


def _forwarded(request: ChatRequest, fields: dict[str, msgspec.Raw], model: str,
               quirks: Quirks) -> bytes:
    """The client's body with the model replaced, and the output cap when the policy lowered
    it (the reservation assumed it); every other byte is the client's."""
    changes = {"model": _encode(model)}
    cap = request.max_completion_tokens
    if cap is not None and _value(fields, "max_output_tokens") != b"%d" % cap:
        changes["max_output_tokens"] = b"%d" % cap
    if request.stream and _value(fields, "stream") != b"true":
        changes["stream"] = b"true"
    native = request.native
    dropped = quirks.drop_params.intersection(fields)
    if native is not None and native.body and not dropped:
        body = replace_values(native.body, fields, changes)
        if body is not None:
            return body
    out: dict[str, Any] = dict(fields)
    for name in dropped:
        del out[name]
    out.update((name, msgspec.Raw(value)) for name, value in changes.items())
    return _encode(out)


def _value(fields: dict[str, msgspec.Raw], name: str) -> bytes | None:
    raw = fields.get(name)
    return bytes(raw).strip() if raw is not None else None


def _responses_fields(request: ChatRequest, deployment: str) -> dict[str, Any]:
    for name, value in (("n", None if request.n == 1 else request.n), ("stop", request.stop),
                        ("seed", request.seed),
                        ("presence_penalty", request.presence_penalty or None),
                        ("frequency_penalty", request.frequency_penalty or None)):
        if value is not None:
            raise unsupported(VENDOR, name, deployment)
    fields: dict[str, Any] = {"input": [item for i, message in enumerate(request.messages)
                                        for item in _items(message, i)],
                              "store": False}
    limit = request.max_completion_tokens or request.max_tokens
    if limit is not None:
        fields["max_output_tokens"] = limit
    for name in ("temperature", "top_p", "parallel_tool_calls", "user"):
        value = getattr(request, name)
        if value is not None:
            fields[name] = value
    if request.tools:
        fields["tools"] = [_tool(tool) for tool in request.tools]
    if request.tool_choice is not None:
        fields["tool_choice"] = _tool_choice(request.tool_choice)
    if request.reasoning_effort is not None:
        fields["reasoning"] = {"effort": request.reasoning_effort}
    if request.response_format is not None:
        text_format = _text_format(request.response_format)
        if text_format is not None:
            fields["text"] = {"format": text_format}
    return fields


def _items(message: Message, i: int) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"type": "function_call_output", "call_id": message.tool_call_id or "",
                 "output": _text(message.content)}]
    items: list[dict[str, Any]] = []
    if message.content or not message.tool_calls:
        content: Any = message.content or ""
        if isinstance(content, list):
            content = [_part(part, message.role) for part in content]
        items.append({"type": "message", "role": message.role, "content": content})
    for call in message.tool_calls or ():
        function = call.function or FunctionCall()
        items.append({"type": "function_call", "call_id": call.id or f"call_{i}",
                      "name": function.name or "", "arguments": function.arguments or ""})
    return items


def _text(content: str | list[ContentPart] | None) -> str:
    if isinstance(content, list):
        return "".join(part.text or "" for part in content if part.type == "text")
    return content or ""


def _part(part: ContentPart, role: str) -> dict[str, Any]:
    if part.type == "text":
        return {"type": "output_text" if role == "assistant" else "input_text",
                "text": part.text or ""}
    if part.type == "image_url" and part.image_url is not None:
        return {"type": "input_image", "image_url": part.image_url.url,
                "detail": part.image_url.detail or "auto"}
    if part.type == "file" and part.file is not None:
        return {"type": "input_file", **part.file}
    raise UpstreamProtocolError(f"content part '{part.type}' has no Responses equivalent")


def _tool(tool: Tool) -> dict[str, Any]:
    function = tool.function or FunctionDefinition("")
    out: dict[str, Any] = {"type": "function", "name": function.name,
                           "parameters": {"type": "object"} if function.parameters is None
                           else function.parameters}
    if function.description is not None:
        out["description"] = function.description
    if function.strict is not None:
        out["strict"] = function.strict
    return out


def _tool_choice(choice: str | ToolChoice) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    if choice.function is not None:
        return {"type": "function", "name": choice.function.name}
    return {"type": choice.type}


def _text_format(fmt: ResponseFormat) -> dict[str, Any] | None:
    if fmt.type == "json_schema":
        schema = fmt.json_schema or JSONSchemaFormat()
        out: dict[str, Any] = {"type": "json_schema", "name": schema.name or "output",
                               "schema": schema.schema or {}}
        if schema.strict is not None:
            out["strict"] = schema.strict
        return out
    if fmt.type == "json_object":
        return {"type": "json_object"}
    return None


# -- answers ---------------------------------------------------------------------------------

class _Part(msgspec.Struct):
    type: str
    text: str | None = None
    refusal: str | None = None


class _Summary(msgspec.Struct):
    text: str = ""


class _Item(msgspec.Struct):
    type: str
    id: str | None = None
    content: list[_Part] | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    summary: list[_Summary] | None = None


class _InputDetails(msgspec.Struct):
    cached_tokens: int | None = None


class _OutputDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class WireUsage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int | None = None
    input_tokens_details: _InputDetails | None = None
    output_tokens_details: _OutputDetails | None = None


class _Incomplete(msgspec.Struct):
    reason: str | None = None


class WireResponse(msgspec.Struct):
    id: str = ""
    model: str = ""
    created_at: float = 0
    status: str | None = None
    output: list[_Item] = msgspec.field(default_factory=list)
    usage: WireUsage | None = None
    incomplete_details: _Incomplete | None = None
    error: dict[str, Any] | None = None


_response_decoder = msgspec.json.Decoder(WireResponse)


def usage(wire: WireUsage | None) -> Usage | None:
    if wire is None:
        return None
    cached = wire.input_tokens_details.cached_tokens if wire.input_tokens_details else None
    reasoning = (wire.output_tokens_details.reasoning_tokens
                 if wire.output_tokens_details else None)
    return Usage(
        prompt_tokens=wire.input_tokens, completion_tokens=wire.output_tokens,
        total_tokens=wire.total_tokens or wire.input_tokens + wire.output_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached) if cached else None,
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=reasoning)
        if reasoning else None)


def finish_reason(response: WireResponse, called: bool) -> str:
    if response.status == "incomplete":
        reason = response.incomplete_details.reason if response.incomplete_details else None
        return _FINISH.get(reason or "", "length")
    return "tool_calls" if called else "stop"


def parse_response(body: bytes, deployment: str, native: bool) -> ChatResponse:
    """``native``: the client speaks this dialect, so the body is kept for it to relay."""
    try:
        wire = _response_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamProtocolError(f"unreadable response from the upstream: {exc}",
                                    deployment=deployment) from exc
    text: list[str] = []
    reasoning: list[str] = []
    refusal: list[str] = []
    calls: list[ToolCall] = []
    for item in wire.output:
        if item.type == "message":
            for part in item.content or ():
                if part.type == "output_text":
                    text.append(part.text or "")
                elif part.type == "refusal":
                    refusal.append(part.refusal or "")
        elif item.type == "function_call":
            calls.append(ToolCall(id=item.call_id, type="function", function=FunctionCall(
                name=item.name or "", arguments=item.arguments or "")))
        elif item.type == "reasoning":
            reasoning += [s.text for s in item.summary or ()]
    message = Message(role="assistant", content="".join(text) if text or not calls else None,
                      tool_calls=calls or None, refusal="".join(refusal) or None,
                      reasoning_content="".join(reasoning) or None)
    return ChatResponse(
        id=wire.id, model=wire.model, created=int(wire.created_at),
        choices=[Choice(index=0, message=message,
                        finish_reason=finish_reason(wire, bool(calls)))],
        usage=usage(wire.usage), native=body if native else None)
