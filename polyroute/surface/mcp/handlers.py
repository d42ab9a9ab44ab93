"""``/mcp``: polyroute as an MCP server over streamable HTTP (MCP 2025-06-18, ``POST`` only).

Stateless: no ``Mcp-Session-Id`` is issued, so a client keeps no session to resume, and each
``POST`` carries one JSON-RPC message, authenticated by the gateway's virtual key
(``Authorization: Bearer``, as every other endpoint). A request is answered with one JSON
body (``application/json``, which the transport allows in place of an SSE stream); a
notification or a response with ``202 Accepted``. ``GET`` (a server-to-client stream) and
``DELETE`` (ending a session) answer 405, which the transport allows too.

Served: ``initialize``, ``ping``, ``tools/list`` and ``tools/call``; the tools are those of
the upstream servers (``engine/tools.py``), named ``server__tool``. Errors are JSON-RPC
errors: ``-32602`` for an unknown tool or bad parameters, ``-32003`` for a tool this key may
not use, ``-32603`` when the upstream server failed, timed out or its circuit is open (with
``data``: polyroute's error ``type``, HTTP-like ``status`` and ``retry_after``), and the
upstream's own code and message when it answered with an error.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from aiohttp import web

from polyroute import __version__
from polyroute.config.compiled import ServerSettings
from polyroute.engine.tools import ToolHub, ToolRefused, UnknownTool
from polyroute.errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    PermissionDenied,
    ServiceUnavailable,
)
from polyroute.policy.types import Policy, Principal
from polyroute.surface.http import credentials, read_body, request_id

log = logging.getLogger("polyroute.mcp")

PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18")
"""Those this server speaks; an unknown one asked for is answered with the newest."""

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNAUTHORIZED = -32001
FORBIDDEN = -32003


class _Message(msgspec.Struct):
    jsonrpc: str = ""
    id: int | str | msgspec.UnsetType | None = msgspec.UNSET
    method: str | None = None
    params: dict[str, Any] | None = None


class _CallParams(msgspec.Struct):
    name: str
    arguments: dict[str, Any] | None = None


_decode = msgspec.json.Decoder(_Message).decode
_encode = msgspec.json.Encoder().encode


class McpHandlers:
    def __init__(self, hub: ToolHub, policy: Policy, server: ServerSettings) -> None:
        self._hub = hub
        self._policy = policy
        self._max_body = server.max_body_bytes
        self._body_timeout = server.body_timeout_s

    async def post(self, http: web.Request) -> web.StreamResponse:
        try:
            principal = await self._policy.authenticate(credentials(http))
        except AuthenticationFailed as exc:
            return _error_response(None, UNAUTHORIZED, exc.message, http, status=401,
                                   headers={"WWW-Authenticate": "Bearer"})
        except (PermissionDenied, ServiceUnavailable) as exc:
            return _error_response(None, UNAUTHORIZED, exc.message, http, status=exc.status)
        try:
            body = await read_body(http, self._max_body, self._body_timeout)
        except GatewayError as exc:
            return _error_response(None, INVALID_REQUEST, exc.message, http, status=exc.status)
        try:
            message = _decode(body)
        except msgspec.DecodeError as exc:
            code = PARSE_ERROR if "JSON" in str(exc) or "truncated" in str(exc) else (
                INVALID_REQUEST)
            return _error_response(None, code, f"Not one JSON-RPC message: {exc}", http,
                                   status=400)
        if message.method is None or isinstance(message.id, msgspec.UnsetType):
            # A notification (``notifications/initialized`` …) or a response: nothing to say.
            return web.Response(status=202, headers={"x-request-id": request_id(http)})
        rid = message.id
        try:
            result = await self._answer(message.method, message.params or {}, principal, http)
        except _RpcError as exc:
            return _error_response(rid, exc.code, exc.message, http, data=exc.data)
        except Exception:
            log.exception("unexpected error serving %s", message.method)
            return _error_response(rid, INTERNAL_ERROR, "The gateway failed to handle this "
                                   "request.", http)
        return _json(http, {"jsonrpc": "2.0", "id": rid, "result": result})

    async def _answer(self, method: str, params: dict[str, Any], principal: Principal,
                      http: web.Request) -> dict[str, Any]:
        if method == "initialize":
            asked = params.get("protocolVersion")
            version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[-1]
            return {"protocolVersion": version,
                    "capabilities": {"tools": {"listChanged": False}},
                    "serverInfo": {"name": "polyroute", "version": __version__},
                    "instructions": "Tools of the MCP servers behind this gateway, each named "
                                    "<server>__<tool>."}
        if method == "ping":
            return {}
        if method == "tools/list":
            tools = await self._hub.tools(principal)
            return {"tools": [t.listed() for t in tools]}
        if method == "tools/call":
            try:
                call = msgspec.convert(params, _CallParams)
            except msgspec.ValidationError as exc:
                raise _RpcError(INVALID_PARAMS, f"tools/call: {exc}") from None
            try:
                return await self._hub.call(principal, call.name, call.arguments,
                                            request_id(http))
            except GatewayError as exc:
                raise _rpc_error(exc) from None
        raise _RpcError(METHOD_NOT_FOUND, f"Method not found: {method} (this gateway serves "
                                          "initialize, ping, tools/list and tools/call).")

    async def not_allowed(self, http: web.Request) -> web.Response:
        return web.Response(status=405, headers={"Allow": "POST",
                                                 "x-request-id": request_id(http)})


class _RpcError(Exception):
    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def _rpc_error(exc: GatewayError) -> _RpcError:
    data: dict[str, Any] = {"type": exc.error_class, "status": exc.status}
    if exc.retry_after is not None:
        data["retry_after"] = round(exc.retry_after, 3)
    if isinstance(exc, ToolRefused):
        return _RpcError(exc.rpc_code, exc.message, data)
    if isinstance(exc, PermissionDenied):
        return _RpcError(FORBIDDEN, exc.message, data)
    if isinstance(exc, UnknownTool | InvalidRequest):
        return _RpcError(INVALID_PARAMS, exc.message, data)
    return _RpcError(INTERNAL_ERROR, exc.message, data)


def _json(http: web.Request, body: dict[str, Any], status: int = 200,
          headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=_encode(body), content_type="application/json",
                        headers={"x-request-id": request_id(http), **(headers or {})})


def _error_response(rid: int | str | None, code: int, message: str, http: web.Request, *,
                    status: int = 200, data: dict[str, Any] | None = None,
                    headers: dict[str, str] | None = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return _json(http, {"jsonrpc": "2.0", "id": rid, "error": error}, status, headers)
