"""Responses API request → canonical chat request. A conversation is carried in ``input``
(messages, function calls and their outputs), or by a ``previous_response_id`` polyroute
stored (:func:`conversation` says which; the handler adds the stored turns)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from polyroute.engine.conversations import STORED_PREFIX
from polyroute.errors import InvalidRequest, invalid_request
from polyroute.model.chat import (
    ChatRequest,
    ContentPart,
    FunctionCall,
    Message,
    NativeRequest,
    StreamOptions,
    ToolCall,
)
from polyroute.model.tools import ImageURL, ResponseFormat, Tool, ToolChoice
from polyroute.nesting import check_json_depth
from polyroute.surface.responses.wire import (
    REQUEST_DECODER,
    FunctionTool,
    InputItem,
    InputPart,
)

UPSTREAM_PROTOCOL = "openai_responses"
"""The upstream protocol that speaks this dialect: its adapter forwards the client's body."""
_fields_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])


def responses_request(body: bytes) -> ChatRequest:
    if not body:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    check_json_depth(body)
    try:
        fields = _fields_decoder.decode(body)
        wire = REQUEST_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise invalid_request(str(exc)) from None
    except msgspec.DecodeError:
        raise InvalidRequest("We could not parse the JSON body of your request.") from None
    gaps = _Gaps()
    if wire.previous_response_id is not None and not wire.previous_response_id.startswith(
            STORED_PREFIX):
        gaps.note(InvalidRequest(
            f"previous_response_id '{wire.previous_response_id}' is not a response polyroute "
            f"stored (those begin '{STORED_PREFIX}': create them with store: true), so only "
            "an upstream that stored it could continue it. Or send the conversation in "
            "'input'.", param="previous_response_id"))
    if wire.background:
        gaps.note(InvalidRequest("background responses are not supported",
                                 param="background"))
    messages: list[Message] = []
    if wire.instructions:
        messages.append(Message(role="system", content=wire.instructions))
    if isinstance(wire.input, str):
        messages.append(Message(role="user", content=wire.input))
    else:
        messages += _items(wire.input, gaps)
    if not messages and gaps.first is None:
        raise InvalidRequest("'input' must not be empty.", param="input")
    request = ChatRequest(
        messages=messages,
        model=wire.model,
        stream=wire.stream,
        stream_options=StreamOptions(include_usage=True) if wire.stream else None,
        max_completion_tokens=wire.max_output_tokens,
        temperature=wire.temperature,
        top_p=wire.top_p,
        tools=_tools(wire.tools, gaps),
        tool_choice=gaps.tried(_tool_choice, wire.tool_choice),
        parallel_tool_calls=wire.parallel_tool_calls,
        user=wire.safety_identifier or wire.user,
        response_format=gaps.tried(_response_format, wire.text.format if wire.text else None),
    )
    first = gaps.first
    request.native = NativeRequest(
        UPSTREAM_PROTOCOL, fields, body,
        untranslatable=first.param if first is not None else None,
        why=first.message if first is not None else "")
    if wire.reasoning is not None and wire.reasoning.effort is not None:
        request.reasoning_effort = wire.reasoning.effort
    return request


T = TypeVar("T")
R = TypeVar("R")


class _Gaps:
    """What the canonical request cannot hold. Not refused here: a Responses upstream takes
    the client's body as it came (built-in tools and all); the engine routes such a request
    only to one, and refuses it with the first gap's message when the group has none."""

    def __init__(self) -> None:
        self.first: InvalidRequest | None = None

    def note(self, gap: InvalidRequest) -> None:
        if self.first is None:
            self.first = gap

    def tried(self, translate: Callable[[T], R], value: T) -> R | None:
        try:
            return translate(value)
        except InvalidRequest as gap:
            self.note(gap)
            return None


def _tools(tools: list[FunctionTool] | None, gaps: _Gaps) -> list[Tool] | None:
    if not tools:
        return None
    out = []
    for i, tool in enumerate(tools):
        try:
            out.append(_tool(tool, i))
        except InvalidRequest as gap:
            gaps.note(gap)
    return out or None


def _items(items: list[InputItem], gaps: _Gaps) -> list[Message]:
    messages: list[Message] = []
    for i, item in enumerate(items):
        if item.type == "message":
            if item.role not in ("user", "assistant", "system", "developer"):
                raise InvalidRequest(f"input[{i}].role must be user, assistant, system or "
                                     "developer", param=f"input[{i}].role")
            messages.append(Message(role=item.role, content=_content(item.content, i, gaps)))
        elif item.type == "function_call":
            call = ToolCall(id=item.call_id, type="function",
                            function=FunctionCall(name=item.name, arguments=item.arguments or ""))
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant" and last.tool_calls is not None:
                last.tool_calls.append(call)  # parallel calls share one assistant turn
            else:
                messages.append(Message(role="assistant", tool_calls=[call]))
        elif item.type == "function_call_output" and (
                item.output is None or isinstance(item.output, str)):
            messages.append(Message(role="tool", tool_call_id=item.call_id,
                                    content=item.output or ""))
        elif item.type == "reasoning":
            continue  # encrypted reasoning of another vendor's model: meaningless elsewhere
        else:
            gaps.note(InvalidRequest(f"input[{i}].type '{item.type}' is not supported by "
                                     "polyroute", param=f"input[{i}].type"))
    return messages


def _content(content: str | list[InputPart] | None, i: int,
             gaps: _Gaps) -> str | list[ContentPart] | None:
    if content is None or isinstance(content, str):
        return content
    parts: list[ContentPart] = []
    for j, part in enumerate(content):
        if part.type in ("input_text", "output_text"):
            parts.append(ContentPart(type="text", text=part.text or ""))
        elif part.type == "input_image" and part.image_url:
            parts.append(ContentPart(type="image_url",
                                     image_url=ImageURL(part.image_url, part.detail or None)))
        else:
            gaps.note(InvalidRequest(f"input[{i}].content[{j}].type '{part.type}' is not "
                                     "supported (input_text and input_image with image_url "
                                     "are)", param=f"input[{i}].content[{j}].type"))
    return parts


def _tool(tool: Any, i: int) -> Tool:
    if tool.type != "function" or not tool.name:
        raise InvalidRequest(f"tools[{i}]: only function tools are supported (built-in tools "
                             "such as web_search run on OpenAI's servers)", param=f"tools[{i}]")
    return Tool.of_function(tool.name, tool.parameters or {"type": "object"}, tool.description,
                            tool.strict)


def _tool_choice(choice: str | dict[str, Any] | None) -> str | ToolChoice | None:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str) \
            and choice["name"]:
        return ToolChoice.naming(choice["name"])
    raise InvalidRequest("tool_choice: use auto, none, required or a function",
                         param="tool_choice")


def _response_format(fmt: Any) -> ResponseFormat | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return ResponseFormat("json_object")
    if fmt.type == "json_schema":
        return ResponseFormat.of_schema(fmt.schema or {}, fmt.name or "output", fmt.strict)
    raise InvalidRequest(f"text.format.type '{fmt.type}' is not supported",
                         param="text.format.type")


class Conversation(msgspec.Struct, frozen=True):
    """What a request says about conversation state."""

    previous: str | None = None
    """A ``previous_response_id`` polyroute stored (``resp_pr…``); others are the upstream's."""
    store: bool | None = None
    instructions: bool = False
    """The request has ``instructions`` (its first message): they are not carried on to
    the next turn, as OpenAI does."""

    @property
    def stateful(self) -> bool:
        """polyroute keeps this conversation: it continues a stored one or asks to be
        stored."""
        return self.previous is not None or bool(self.store)


_Str = msgspec.json.Decoder(str | None)
_Bool = msgspec.json.Decoder(bool | None)


def conversation(request: ChatRequest) -> Conversation:
    """The conversation fields of a decoded Responses request (read from its kept fields)."""
    fields = request.native.fields if request.native is not None else {}
    previous = _Str.decode(fields["previous_response_id"]) if \
        "previous_response_id" in fields else None
    store = _Bool.decode(fields["store"]) if "store" in fields else None
    instructions = _Str.decode(fields["instructions"]) if "instructions" in fields else None
    return Conversation(previous if previous and previous.startswith(STORED_PREFIX) else None,
                        store, bool(instructions))
