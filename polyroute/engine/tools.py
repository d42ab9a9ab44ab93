"""The MCP gateway's engine: the upstream MCP servers behind one endpoint, what a caller may
see and call of them, and one ledger record per tool call.

- **Listing**: the tools of every server the caller may use, each named ``server__tool``
  (``model/mcp.py``), filtered by the caller's allow-lists (key, team, organisation). A
  server's list is kept ``tools_ttl_s``. A server whose circuit is open is *left out* of
  listings (its tools disappear until a probe succeeds); one that fails while listing is
  left out of that listing and counted against its circuit.
- **Calling**: a tool the caller may not use is refused (``PermissionDenied``, in the audit
  log), as is one no server lists; a call to a server whose circuit is open fails at once
  (:class:`CircuitOpen`, with the seconds until the next probe) without touching it.
- Every call (refused ones too) is one ``RequestRecord`` with ``endpoint: mcp``,
  ``deployment`` the server and ``upstream_model`` the tool, settled by the policy into the
  ledger and handed to the observers (metrics, request log, the audit log's refusals).

Circuits are the gateway's own breakers (``engine/circuit.py``) under the name
``mcp:<server>``, so ``/metrics`` and the console show them with the deployments'.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from polyroute.adapters.mcp.client import McpClient, ToolRefused
from polyroute.config.compiled import Circuit, McpSettings
from polyroute.engine.circuit import Breakers
from polyroute.engine.observer import RequestObserver
from polyroute.errors import (
    GatewayError,
    InvalidRequest,
    PermissionDenied,
    UpstreamError,
    UpstreamUnavailable,
)
from polyroute.model.mcp import Tool, split_name
from polyroute.model.record import RequestRecord
from polyroute.model.usage import Usage
from polyroute.policy.types import AdmissionRequest, Policy, Principal

log = logging.getLogger("polyroute.mcp")

__all__ = ["CircuitOpen", "ToolHub", "ToolRefused", "UnknownTool"]

CIRCUIT_PREFIX = "mcp:"


class CircuitOpen(UpstreamUnavailable):
    code = "mcp_server_unavailable"


class UnknownTool(InvalidRequest):
    code = "unknown_tool"


class ToolHub:
    def __init__(self, settings: McpSettings, breakers: Breakers, policy: Policy,
                 observers: Sequence[RequestObserver]) -> None:
        self._breakers = breakers
        self._policy = policy
        self._observers = observers
        self._clients: dict[str, McpClient] = {}
        self._circuits: Mapping[str, Circuit] = {}
        self._lists: dict[str, tuple[float, list[Tool]]] = {}
        """Server → (monotonic time fetched, its tools)."""
        self.max_tool_rounds = settings.max_tool_rounds
        self._closing: set[asyncio.Task[None]] = set()
        self._adopt(settings)

    @property
    def servers(self) -> list[str]:
        return sorted(self._clients)

    def _adopt(self, settings: McpSettings) -> None:
        self._clients.update({name: McpClient(server) for name, server in
                              settings.servers.items() if name not in self._clients})
        self._circuits = settings.circuits
        self.max_tool_rounds = settings.max_tool_rounds
        self._breakers.track(CIRCUIT_PREFIX + name for name in settings.servers)

    def use(self, settings: McpSettings) -> None:
        """A reloaded config: servers removed or changed are closed in the background (a
        stdio server's process stops), new ones open on first use; the others keep their
        session, their tool list and their circuit."""
        stale = [c for name, c in self._clients.items()
                 if settings.servers.get(name) != c.server]
        for client in stale:
            del self._clients[client.name]
            self._lists.pop(client.name, None)
        self._adopt(settings)
        if stale:
            task = asyncio.get_running_loop().create_task(_close(stale))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await _close(clients)
        if self._closing:
            await asyncio.wait(self._closing)

    # -- listing ----------------------------------------------------------------------------
    async def tools(self, principal: Principal,
                    servers: Sequence[str] | None = None) -> list[Tool]:
        """What ``principal`` may call now, of ``servers`` (default: every server)."""
        names = [s for s in (self.servers if servers is None else servers)
                 if s in self._clients and principal.may_use_server(s)]
        lists = await asyncio.gather(*(self._listed(s) for s in names))
        return [t for tools in lists for t in tools if principal.may_use_tool(t.server, t.name)]

    async def _listed(self, server: str) -> list[Tool]:
        circuit = CIRCUIT_PREFIX + server
        if self._breakers.blocked(circuit):
            return []  # open: its tools disappear until a probe succeeds
        kept = self._lists.get(server)
        client = self._clients[server]
        if kept is not None and time.monotonic() - kept[0] < client.server.tools_ttl_s:
            return kept[1]
        if not await self._breakers.allow(circuit):
            return []
        try:
            tools = await client.list_tools()
        except UpstreamError as exc:
            self._judge(server, exc)
            log.warning("MCP server %s left out of the tool list: %s", server, exc.message)
            return []
        except asyncio.CancelledError:
            self._breakers.release(circuit)
            raise
        self._breakers.success(circuit, self._circuits.get(server))
        self._lists[server] = (time.monotonic(), tools)
        return tools

    # -- calling ----------------------------------------------------------------------------
    async def call(self, principal: Principal, name: str, arguments: dict[str, Any] | None,
                   request_id: str) -> dict[str, Any]:
        """Run the tool ``name`` (``server__tool``) and return its ``CallToolResult`` (JSON);
        recorded in the ledger under ``request_id`` whatever happens (a chat request's tool
        calls share its id with its model calls). Raises GatewayError."""
        parts = split_name(name)
        server, tool = parts if parts is not None else ("", name)
        known = server if server in self._clients else None  # never a caller's made-up name
        record = RequestRecord(request_id, time.time(), "mcp", name,
                               vendor="mcp", deployment=known, upstream_model=tool,
                               key_id=principal.key_id, team=principal.team,
                               org=principal.org, usage=Usage())
        started = time.monotonic()
        ticket: object = None
        try:
            client = self._allowed(principal, server, tool)
            # A call takes a request of the caller's rate limit and a concurrency slot, as
            # a model call does; it costs no tokens and no money.
            ticket = await self._policy.admit(principal, AdmissionRequest(
                CIRCUIT_PREFIX + server, 0, 0, (), tool_call=True))
            return await self._call(client, server, tool, arguments)
        except GatewayError as exc:
            record.status, record.error_class = exc.status, exc.error_class
            raise
        except asyncio.CancelledError:
            record.status, record.error_class = 499, "client_closed"
            raise
        finally:
            record.latency_s = time.monotonic() - started
            self._settle(record, ticket)

    def _allowed(self, principal: Principal, server: str, tool: str) -> McpClient:
        client = self._clients.get(server)
        if client is None:
            raise UnknownTool(f"No MCP server offers the tool '{server}__{tool}' (tools are "
                              "named <server>__<tool>; tools/list shows them).", param="name")
        if not principal.may_use_tool(server, tool):
            raise PermissionDenied(f"This key may not use the MCP tool '{server}__{tool}'.",
                                   param="name")
        return client

    async def _call(self, client: McpClient, server: str, tool: str,
                    arguments: dict[str, Any] | None) -> dict[str, Any]:
        circuit = CIRCUIT_PREFIX + server
        if not await self._breakers.allow(circuit):
            wait = self._breakers.reopens_in([circuit])
            error = CircuitOpen(
                f"MCP server '{server}' is unavailable: its circuit is open after repeated "
                f"failures{f'; it is tried again in {wait:.0f} s' if wait else ''}.",
                deployment=server, retry_after=wait)
            raise error
        try:
            result = await client.call_tool(tool, arguments)
        except UpstreamError as exc:
            self._judge(server, exc)
            raise
        except asyncio.CancelledError:
            self._breakers.release(circuit)
            raise
        self._breakers.success(circuit, self._circuits.get(server))
        return result

    def refused(self, record: RequestRecord, principal: Principal, exc: GatewayError) -> None:
        """A chat request refused before any model call (an MCP server the key may not use):
        its record goes to the ledger and the audit log like any refusal."""
        record.key_id, record.team, record.org = principal.key_id, principal.team, principal.org
        record.status, record.error_class = exc.status, exc.error_class
        self._settle(record)

    def _judge(self, server: str, exc: UpstreamError) -> None:
        circuit = CIRCUIT_PREFIX + server
        settings = self._circuits.get(server)
        if isinstance(exc, ToolRefused):  # an answer: the server works
            self._breakers.success(circuit, settings)
        elif settings is not None:
            self._breakers.failure(circuit, exc, settings)

    def _settle(self, record: RequestRecord, ticket: object = None) -> None:
        self._policy.settle(ticket, record)  # a tool call costs no tokens: $0
        for observer in self._observers:
            try:
                observer.observe(record)
            except Exception:  # an observer must never fail the call
                log.exception("observer failed on an MCP tool call record")


async def _close(clients: Sequence[McpClient]) -> None:
    await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
