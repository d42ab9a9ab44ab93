"""MCP tools offered to a model in a chat request, and run by the gateway.

A chat request names MCP servers the way OpenAI's Responses API does, as tools of type
``mcp``: ``{"type": "mcp", "server_label": "docs", "allowed_tools": ["search"]}``
(``allowed_tools`` optional: the server's own tool names). Those entries are replaced by the
tools the caller may use of those servers, as function tools named ``server__tool``; when the
model calls them, the gateway runs them through the :class:`~polyroute.engine.tools.ToolHub`,
appends the results as tool messages, and asks the model again, until it answers without
calling a tool, at most ``mcp.max_tool_rounds`` model calls (the last is sent with
``tool_choice: none``, so it answers in words; a ``tool_choice`` that forces a call applies
to the first round only, then ``auto``). Every model call is a request of its own to
the engine: routed, admitted, billed and recorded in the ledger like any other; every tool
call is recorded as well (``endpoint: mcp``).

A model that calls a function the client defined itself (not an MCP tool) gets that answer
back to the client as it is: the client runs its own functions. A tool that fails (timeout,
open circuit, an error result) is told to the model as the tool's result, so that it can
answer anyway; nothing is hidden from the ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec

from polyroute.engine.gateway import NO_OVERRIDES, Gateway, TimeoutOverrides
from polyroute.engine.tools import ToolHub
from polyroute.errors import GatewayError, InvalidRequest, PermissionDenied
from polyroute.model.chat import ChatRequest, ChatResponse, Message, ToolCall
from polyroute.model.mcp import FUNCTION_NAME, Tool
from polyroute.model.record import RequestRecord
from polyroute.model.tools import Tool as ChatTool
from polyroute.model.usage import Usage
from polyroute.policy.types import Principal

_decode_arguments = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode


def wants_mcp(request: ChatRequest) -> bool:
    return bool(request.tools) and any(
        t.type == "mcp" for t in request.tools or ())


class ToolLoop:
    def __init__(self, gateway: Gateway, hub: ToolHub) -> None:
        self._gateway = gateway
        self._hub = hub

    async def chat(self, request: ChatRequest, record: RequestRecord, principal: Principal,
                   new_record: Callable[[], RequestRecord],
                   overrides: TimeoutOverrides = NO_OVERRIDES) -> ChatResponse:
        """The model's final answer (usage: every round's, summed). ``record`` is the first
        model call's; ``new_record`` opens each later one's."""
        if request.n not in (None, 1):
            raise InvalidRequest("MCP tools need n = 1: the gateway continues one "
                                 "conversation.", param="n")
        try:
            offered = await self._offer(request, principal)
        except PermissionDenied as exc:
            self._hub.refused(record, principal, exc)
            raise
        # The body changes (tools now, messages later): re-encoded from the typed fields,
        # never forwarded as the client's bytes.
        request.passthrough = None
        request.stream = False
        request.stream_options = None
        record.stream = False
        rounds = self._hub.max_tool_rounds
        total = Usage()
        response = ChatResponse()
        for round_number in range(1, rounds + 1):
            if round_number == rounds and offered:
                request.tool_choice = "none"  # the last model call answers in words
            if round_number > 1:
                record = new_record()
            response = await self._gateway.chat(request, record, overrides, principal)
            total = _add(total, response.usage)
            calls = _mcp_calls(response, offered)
            if calls is None:
                break
            # The assistant turn goes back whole: thinking blocks and their signatures too,
            # which Anthropic requires with a tool use.
            request.messages.append(response.choices[0].message)
            results = await asyncio.gather(*(self._run(c, principal, record.request_id)
                                             for c in calls))
            request.messages.extend(results)
            if request.tool_choice not in (None, "auto", "none"):
                # A choice that forces a tool call would force one every round: it applied
                # to the first (as the Agents SDK resets it after a tool use).
                request.tool_choice = "auto"
        if round_number > 1:
            response.usage = total
            response.raw = None  # the usage changed: encoded, not the upstream's bytes
        return response

    async def _offer(self, request: ChatRequest, principal: Principal) -> dict[str, Tool]:
        """Replace the request's ``mcp`` entries with function tools; returns them by name."""
        servers: dict[str, set[str] | None] = {}
        others: list[ChatTool] = []
        for i, entry in enumerate(request.tools or ()):
            if entry.type != "mcp":
                others.append(entry)
                continue
            label = entry.server_label
            if label is None or label not in self._hub.servers:
                known = ", ".join(self._hub.servers) or "none is configured"
                raise InvalidRequest(f"tools[{i}].server_label must name an MCP server of "
                                     f"this gateway ({known}).", param=f"tools[{i}]")
            if not principal.may_use_server(label):
                raise PermissionDenied(f"This key may not use the MCP server '{label}'.",
                                       param=f"tools[{i}].server_label")
            allowed = entry.allowed_tools
            names = set(allowed) if allowed is not None else None
            servers[label] = names if label not in servers else _union(servers[label], names)
        tools = await self._hub.tools(principal, list(servers))
        offered = {t.qualified: t for t in tools
                   if FUNCTION_NAME.match(t.qualified)
                   and ((names := servers[t.server]) is None or t.name in names)}
        clash = next((o for o in others if _function_name(o) in offered), None)
        if clash is not None:
            raise InvalidRequest(f"The function '{_function_name(clash)}' has the name of an "
                                 "MCP tool offered in the same request.", param="tools")
        request.tools = [*others, *(t.function() for t in offered.values())] or None
        if not request.tools:
            request.tool_choice = None
        return offered

    async def _run(self, call: ToolCall, principal: Principal, request_id: str) -> Message:
        function = call.function
        name = function.name if function is not None and function.name else ""
        try:
            arguments = _decode_arguments((function.arguments if function else None) or "{}")
        except (msgspec.DecodeError, msgspec.ValidationError):
            return _tool_message(call, "Error: the arguments are not a JSON object.")
        try:
            result = await self._hub.call(principal, name, arguments, request_id)
        except GatewayError as exc:
            return _tool_message(call, f"Error: {exc.message}")
        return _tool_message(call, result_text(result))


def _mcp_calls(response: ChatResponse, offered: dict[str, Tool]) -> list[ToolCall] | None:
    """The MCP tools the model called, or None: it answered, or called something only the
    client can run."""
    if not response.choices:
        return None
    calls = response.choices[0].message.tool_calls
    if not calls:
        return None
    if any(c.function is None or c.function.name not in offered for c in calls):
        return None
    return calls


def result_text(result: dict[str, Any]) -> str:
    """A ``CallToolResult`` as the text of a tool message: its text parts, else its
    structured content, else the parts as JSON; ``Error:`` in front when the tool failed."""
    parts = result.get("content") or []
    texts = [p["text"] for p in parts if isinstance(p, dict) and p.get("type") == "text"
             and isinstance(p.get("text"), str)]
    if texts and len(texts) == len(parts):
        text = "\n".join(texts)
    elif result.get("structuredContent") is not None:
        text = _encode(result["structuredContent"]).decode()
    else:
        text = _encode(parts).decode()
    return f"Error: {text}" if result.get("isError") else text


def _tool_message(call: ToolCall, text: str) -> Message:
    return Message(role="tool", tool_call_id=call.id, content=text)


def _function_name(tool: ChatTool) -> str | None:
    return tool.function.name if tool.function is not None else None


def _union(a: set[str] | None, b: set[str] | None) -> set[str] | None:
    return None if a is None or b is None else a | b


def _add(total: Usage, usage: Usage | None) -> Usage:
    if usage is None:
        return total
    return Usage(prompt_tokens=total.prompt_tokens + usage.prompt_tokens,
                 completion_tokens=total.completion_tokens + usage.completion_tokens,
                 total_tokens=total.total_tokens + usage.total_tokens)
