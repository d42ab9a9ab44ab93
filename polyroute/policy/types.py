"""The policy seam: what the surface and the engine ask of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from polyroute.model.governance import DataPolicy
from polyroute.model.media import Units
from polyroute.model.price import Price
from polyroute.model.record import RequestRecord


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. ``key_id`` None is the anonymous caller of a gateway without keys."""

    key_id: str | None = None
    team: str | None = None
    org: str | None = None
    allowed_models: frozenset[str] | None = None
    """Model groups this caller may use; None: all."""
    governance: tuple[tuple[str, DataPolicy], ...] = ()
    """The data-governance policies of the key, its team and its organisation ('k:…',
    't:…', 'o:…' → policy); empty, the common case, costs the request nothing."""

    mcp_servers: frozenset[str] | None = None
    """MCP servers this caller may use (``/mcp``, and MCP tools in chat requests); None: all."""
    mcp_tools: frozenset[str] | None = None
    """MCP tools this caller may use, namespaced (``server__tool``; ``server__*``: all of that
    server's); None: every tool of an allowed server."""

    def may_use(self, group: str) -> bool:
        allowed = self.allowed_models
        return allowed is None or group in allowed

    def may_use_server(self, server: str) -> bool:
        """The server is allowed, and so is at least one name of it (when tools are listed):
        a server with nothing this caller may call is not even asked for its tools."""
        if self.mcp_servers is not None and server not in self.mcp_servers:
            return False
        prefix = f"{server}__"
        return self.mcp_tools is None or any(t.startswith(prefix) for t in self.mcp_tools)

    def may_use_tool(self, server: str, tool: str) -> bool:
        """The key's, its team's and its organisation's allow-lists all let this tool by."""
        if not self.may_use_server(server):
            return False
        tools = self.mcp_tools
        return tools is None or f"{server}__{tool}" in tools or f"{server}__*" in tools


ANONYMOUS = Principal()


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    model_group: str
    estimated_input_tokens: int
    max_output_tokens: int | None
    """Per answer; None: the client set none (the policy's default applies)."""
    prices: Sequence[Price | None]
    """Prices of the candidate deployments: a reservation must cover the dearest."""
    choices: int = 1
    """Answers asked for (``n``): each may write ``max_output_tokens``."""
    extra_output_tokens: int = 0
    """Output billed beyond the answers' own limit (a ``prediction``'s rejected tokens)."""
    groups: tuple[str, ...] = ()
    """Every group whose deployments the route may try (besides ``model_group``)."""
    units: Units | None = None
    """A media request's most units (images, seconds of audio, characters), each candidate's
    ``per_unit`` price reserved for them (``model/media.py``)."""
    tool_call: bool = False
    """An MCP tool call (``model_group`` names the server): it takes a request of the
    caller's rate and a concurrency slot, but names no model and costs no tokens or money."""

    def output_tokens(self, default: int) -> int:
        """The most output the request may be billed for."""
        per_answer = default if self.max_output_tokens is None else self.max_output_tokens
        return per_answer * self.choices + self.extra_output_tokens


class Policy(Protocol):
    async def authenticate(self, credentials: str | None) -> Principal:
        """The caller behind a key (``Authorization: Bearer`` or ``x-api-key``), or raise
        AuthenticationFailed. Must keep answering from a cache when the key store is down."""
        ...

    async def admit(self, principal: Principal, request: AdmissionRequest) -> object:
        """Check the caller may make this request now (model allowed, rate, concurrency,
        budget) and reserve what it may cost; returns a ticket for ``settle``. Raises
        PermissionDenied, RateLimited, BudgetExceeded or ServiceUnavailable."""
        ...

    def settle(self, ticket: object, record: RequestRecord) -> None:
        """The request ended (``record`` says how): release what was reserved, charge what it
        really cost, append the ledger record. Never blocks: no I/O on the caller's path."""
        ...

    async def reserve(self, principal: Principal, request: AdmissionRequest) -> object:
        """A batch's worst-case cost, reserved against the caller's budgets alone (no rate or
        concurrency slot); returns a ticket for ``settle_batch``. Raises like ``admit``."""
        ...

    def settle_batch(self, ticket: object, record: RequestRecord, factor: float) -> None:
        """A batch ended: charge ``record.usage`` at ``factor`` of the deployment's price,
        release the reservation, append the ledger record. ``ticket`` may be None (lost with
        a restart)."""
        ...

    def output_cap(self, principal: Principal) -> int | None:
        """The output limit (per answer) to send upstream when the client set none, so that
        what is spent never exceeds what was reserved; None: send none."""
        ...


class OpenPolicy:
    """No keys, no limits: the embedded default on loopback."""

    async def authenticate(self, credentials: str | None) -> Principal:
        return ANONYMOUS

    async def admit(self, principal: Principal, request: AdmissionRequest) -> object:
        return None

    def settle(self, ticket: object, record: RequestRecord) -> None:
        return None

    async def reserve(self, principal: Principal, request: AdmissionRequest) -> object:
        return None

    def settle_batch(self, ticket: object, record: RequestRecord, factor: float) -> None:
        return None

    def output_cap(self, principal: Principal) -> int | None:
        return None
