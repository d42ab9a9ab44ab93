"""The audit log: every admin action and every policy refusal, append-only and hash-chained.

Admin actions are appended before the call answers (they are rare, and an operator must be
able to rely on seeing their own change). Request refusals happen on the request path, so
they are appended to a local spool (an mmap'd file: one memory copy, survives ``kill -9``)
and chained into the database in batches by a background task, like the ledger; a database
outage delays them and loses none.

``verify`` walks the chain from the first entry: an entry edited, removed or inserted breaks
the chain at that entry; entries cut from the end are caught by the head row.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from polyroute.model.record import RequestRecord
from polyroute.storage.audit import GENESIS, AuditEntry, AuditStore, entry_hash, entry_of
from polyroute.storage.drain import SpoolDrain
from polyroute.storage.spool import Spool

log = logging.getLogger("polyroute.audit")

_encode = msgspec.json.Encoder().encode
_VERIFY_PAGE = 1000


class _Spooled(msgspec.Struct, array_like=True):
    entry_id: str
    ts: float
    actor: str
    action: str
    target: str | None
    outcome: str
    detail: str


_decode_spooled = msgspec.json.Decoder(_Spooled).decode


class AuditView(msgspec.Struct, omit_defaults=True):
    seq: int
    ts: float
    actor: str
    action: str
    outcome: str
    detail: dict[str, Any]
    hash: str
    target: str | None = None


class VerifyResult(msgspec.Struct):
    ok: bool
    entries: int
    """Entries checked."""
    head_seq: int
    problem: str | None = None
    """The first break found: which entry, and what is wrong with it."""


class AuditLog(SpoolDrain):
    def __init__(self, store: AuditStore, spool: Spool | None = None, *,
                 interval_s: float = 0.5, clock: Callable[[], float] = time.time) -> None:
        super().__init__("audit", "refusals", interval_s)
        self._store = store
        self._spool = spool
        self._memory: list[AuditEntry] = []
        """Without a spool (one admin call served in process): refusals wait here."""
        self._clock = clock
        self.pending = 0

    # -- writing ----------------------------------------------------------------------------
    def _entry(self, actor: str, action: str, target: str | None, outcome: str,
               detail: dict[str, Any] | None) -> AuditEntry:
        return AuditEntry(uuid.uuid4().hex, self._clock(), actor, action, target, outcome,
                          _encode(detail or {}).decode())

    async def record(self, actor: str, action: str, target: str | None, outcome: str,
                     detail: dict[str, Any] | None = None) -> None:
        """An admin action: chained before the caller answers. Raises StoreUnavailable."""
        await self._store.append([self._entry(actor, action, target, outcome, detail)])

    def refused(self, actor: str, action: str, target: str | None,
                detail: dict[str, Any] | None = None) -> None:
        """A request refused by a policy: spooled now, chained in the background. Never
        blocks and never raises into the request."""
        self.spooled(actor, action, target, "refused", detail)

    def spooled(self, actor: str, action: str, target: str | None, outcome: str,
                detail: dict[str, Any] | None = None) -> None:
        """An entry from the request path (a refusal, an MCP tool call): spooled now, chained
        in the background; never blocks and never raises into the request."""
        entry = self._entry(actor, action, target, outcome, detail)
        if self._spool is None:
            self._memory.append(entry)
        else:
            self._spool.append(_encode(_Spooled(*_fields(entry))) + b"\n")
        self.pending += 1
        self._wake.set()

    # -- background -------------------------------------------------------------------------
    def open(self) -> None:
        if self._spool is not None:
            self._spool.open()

    def start(self) -> None:
        self._start()

    async def flush(self) -> None:
        """Chain everything waiting. Raises StoreUnavailable (nothing is lost)."""
        async with self._flushing:
            self.pending = 0
            if self._memory:
                batch, self._memory = self._memory, []
                try:
                    await self._store.append(batch)
                except BaseException:
                    self._memory[:0] = batch
                    raise
            if self._spool is not None:
                await self.drain(self._spool, self._chain)

    async def _chain(self, lines: list[bytes]) -> None:
        entries = []
        for line in lines:
            try:
                entries.append(AuditEntry(*msgspec.structs.astuple(_decode_spooled(line))))
            except msgspec.DecodeError:
                log.error("audit: an unreadable spool line was skipped: %r", line[:200])
        await self._store.append(entries)

    async def aclose(self) -> None:
        await self._close(self._spool)

    # -- reading ----------------------------------------------------------------------------
    async def query(self, since: float, until: float, filters: dict[str, str],
                    limit: int) -> list[AuditView]:
        rows = await self._store.query(since, until, filters, limit)
        out = []
        for row in rows:
            seq, entry, _, digest = entry_of(row)
            out.append(AuditView(seq=seq, ts=entry.ts, actor=entry.actor,
                                 action=entry.action, target=entry.target,
                                 outcome=entry.outcome, detail=msgspec.json.decode(entry.detail),
                                 hash=digest))
        return out

    async def verify(self) -> VerifyResult:
        """Recompute the chain from the first entry to the head."""
        expected_seq, running, checked = 0, GENESIS, 0
        while True:
            rows = await self._store.chain(expected_seq, _VERIFY_PAGE)
            for row in rows:
                seq, entry, prev, digest = entry_of(row)
                expected_seq += 1
                if seq != expected_seq:
                    return VerifyResult(False, checked, seq, f"entry {expected_seq} is missing "
                                        f"(the next one is {seq})")
                if prev != running:
                    return VerifyResult(False, checked, seq, f"entry {seq} does not follow "
                                        "entry before it: one was removed, replaced or edited")
                if entry_hash(prev, seq, entry) != digest:
                    return VerifyResult(False, checked, seq,
                                        f"entry {seq} was edited: its hash does not match")
                running = digest
                checked += 1
            if len(rows) < _VERIFY_PAGE:
                break
        head_seq, head_hash = await self._store.head()
        if head_seq != expected_seq or head_hash != running:
            return VerifyResult(False, checked, head_seq,
                                f"the log ends at entry {expected_seq} but its head says "
                                f"{head_seq}: entries were removed from the end")
        return VerifyResult(True, checked, head_seq)


class RefusalAuditor:
    """A request observer: every request a policy refused (governance, model allow-list,
    rate, budget) goes to the audit log, off the request path; so does every MCP tool call
    (issue 16: what an agent did through the gateway's tools is on the record)."""

    AUDITED = frozenset({"policy_violation", "permission_denied", "rate_limited",
                         "budget_exceeded"})

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    def observe(self, record: RequestRecord) -> None:
        if record.error_class not in self.AUDITED:
            if record.endpoint == "mcp":
                self._audit.spooled(
                    f"key:{record.key_id}" if record.key_id else "anonymous", "mcp tool call",
                    record.requested_model, "ok" if record.error_class is None else "failed",
                    {"request_id": record.request_id, "status": record.status})
            return
        detail = {"request_id": record.request_id, "status": record.status,
                  "team": record.team, "org": record.org, "model_group": record.model_group}
        if record.governance is not None:
            detail["rule"] = record.governance
        self._audit.refused(f"key:{record.key_id}" if record.key_id else "anonymous",
                            f"request {record.error_class}", record.requested_model,
                            {k: v for k, v in detail.items() if v is not None})


def _fields(entry: AuditEntry) -> tuple[Any, ...]:
    return (entry.entry_id, entry.ts, entry.actor, entry.action, entry.target, entry.outcome,
            entry.detail)
