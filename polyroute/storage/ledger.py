"""The ledger: one append-only record per request, completed or failed — what it cost and
what happened (it is also the request log).

The request path only encodes the record and appends it to the :class:`~.spool.Spool` (one
``os.write``). A background task reads the spool and inserts batches into the database
(idempotent on ``entry_id``), retrying with backoff while the database is down, so records
wait on disk, not in memory. At startup the segments of a process that died are adopted and
flushed like any other.

A record the database refuses (:class:`~.database.RowsRejected`: a NUL byte PostgreSQL's text
columns cannot hold, an integer beyond BIGINT) must not jam the queue behind it (issue 10,
item 9): the batch is split until the refused rows are alone, those are *quarantined* —
appended with the database's reason to ``quarantine.jsonl`` in the spool directory, logged,
counted (``polyroute_ledger_quarantined_records``) — and every other row is written. So is an
unreadable spool line. Nothing is retried forever; nothing is silently lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

import msgspec

from polyroute.storage.database import Database, RowsRejected, StoreUnavailable
from polyroute.storage.drain import SpoolDrain
from polyroute.storage.spool import Spool
from polyroute.storage.sql import LEDGER_INSERT

log = logging.getLogger("polyroute.ledger")


class LedgerEntry(msgspec.Struct, array_like=True):
    """One row of the ``ledger`` table, in column order (see sql.LEDGER_COLUMNS)."""

    entry_id: str
    """Unique per record: a batch flushed again after a crash inserts nothing twice."""
    request_id: str
    ts: float
    day: str
    key_id: str | None
    team: str | None
    org: str | None
    endpoint: str
    requested_model: str
    model_group: str | None
    vendor: str | None
    deployment: str | None
    upstream_model: str | None
    status: int
    error_class: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: float | None
    """None: unpriced (tokens were used but no price is known). Never a made-up 0."""
    priced: int
    price_source: str | None
    latency_ms: float
    attempts: str
    """JSON list of [deployment, vendor, outcome, status, latency_ms]."""
    usage_estimated: int = 0
    """1: the tokens are polyroute's estimate (a stream that ended without the upstream's
    usage), not the vendor's count. Last and defaulted: older spool lines still decode."""
    client_request_id: str | None = None
    """The client's own id of the request, if it gave one. Last and optional, so spool lines
    written by an older version still decode."""
    # What the request log alone had, before the ledger became the one record per request
    # (issue 12). Appended with defaults, like the two above, for the same reason.
    stream: int = 0
    ttft_ms: float | None = None
    """Time to the first content of a stream; None: not a stream, or nothing came."""
    route: str | None = None
    """The auto-router's decision (the chosen deployment and predicted scores)."""
    cache: str | None = None
    """The response cache (issue 15): 'hit', 'miss', 'bypass'; None: not cached."""
    saved_usd: float | None = None
    """A cache hit: what the answer cost when it was made (cost_usd is 0)."""
    features: str | None = None
    """The capabilities the request used (tools, json_schema, vision…; issue 14)."""
    governance: str | None = None
    """The data-governance policies applied (issue 11): which, and what they did."""
    prompt: str | None = None
    """What the auto-router reads of the prompt (head and tail of the user turns, after any
    redaction), kept only when the caller's governance policy sets retain_bodies: the text
    ``router train --from-ledger`` learns from (issue 17; docs/router.md)."""


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(LedgerEntry).decode
_Row = tuple[tuple[object, ...], bytes]
"""A ledger row and the spool line it came from."""


class _Quarantined(msgspec.Struct):
    """One line of quarantine.jsonl: why the database refused it, and the record itself."""

    reason: str
    record: msgspec.Raw


_validate_json = msgspec.json.Decoder().decode


def _quarantine_record(line: bytes, reason: str) -> bytes:
    """The spool line as it was (or, unreadable, as a string), with the reason."""
    try:
        _validate_json(line)
        record = msgspec.Raw(line)
    except msgspec.DecodeError:
        record = msgspec.Raw(_encode(line.decode("utf-8", "replace")))
    return _encode(_Quarantined(reason, record)) + b"\n"


class LedgerWriter(SpoolDrain):
    def __init__(self, spool: Spool, db: Database, *, interval_s: float = 0.5,
                 batch: int = 1000) -> None:
        super().__init__("ledger", "records", interval_s)
        self._spool = spool
        self._db = db
        self._batch = batch
        self._pending = 0
        self.written = 0
        self.quarantined = 0
        """Records the database refused (or unreadable lines), moved to the quarantine file."""

    def append(self, entry: LedgerEntry) -> None:
        self._spool.append(_encode(entry) + b"\n")
        self._pending += 1
        if self._pending >= self._batch:
            self._wake.set()

    def open(self) -> None:
        """Open the spool (adopting the segments of processes that died): before any append."""
        self._spool.open()
        if self._spool.adopted:
            log.info("ledger: adopting %d spool segment(s) left by a previous process",
                     self._spool.adopted)

    async def start(self, drain_timeout_s: float = 5.0) -> None:
        """Within ``drain_timeout_s``, flush what is spooled (so spend totals loaded next
        include what dead processes left); then keep flushing in the background."""
        if self._task is not None:
            return
        with contextlib.suppress(TimeoutError, StoreUnavailable):
            async with asyncio.timeout(drain_timeout_s):
                await self.flush()
        self._start()

    def backlog_bytes(self) -> int:
        return self._spool.backlog_bytes()

    async def _flushed(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._spool.sync)

    async def flush(self) -> None:
        """Insert everything spooled so far. Raises StoreUnavailable (nothing is lost)."""
        async with self._flushing:
            self._pending = 0
            await self.drain(self._spool, self._write)

    async def _write(self, lines: list[bytes]) -> None:
        rows: list[_Row] = []
        for line in lines:
            try:
                rows.append((msgspec.structs.astuple(_decode(line)), line))
            except msgspec.DecodeError as exc:
                await self._quarantine([line], f"unreadable spool line: {exc}")
        for start in range(0, len(rows), self._batch):
            await self._insert(rows[start:start + self._batch])

    async def _insert(self, rows: list[_Row]) -> None:
        """Insert ``rows``; if the database refuses some, halve until they are found (inserts
        are idempotent, so rows of a half that went in before are not doubled)."""
        try:
            await self._db.insert_rows(LEDGER_INSERT, [row for row, _ in rows])
        except RowsRejected as exc:
            if len(rows) == 1:
                await self._quarantine([rows[0][1]], str(exc))
                return
            middle = len(rows) // 2
            await self._insert(rows[:middle])
            await self._insert(rows[middle:])
            return
        self.written += len(rows)

    async def _quarantine(self, lines: list[bytes], reason: str) -> None:
        self.quarantined += len(lines)
        log.error("ledger: quarantined %d record(s) (%s): moved to %s; every other record is "
                  "still written", len(lines), reason[:300], self.quarantine_path)
        records = b"".join(_quarantine_record(line, reason) for line in lines)
        await asyncio.get_running_loop().run_in_executor(None, self._append_quarantine, records)

    @property
    def quarantine_path(self) -> Path:
        return self._spool.directory / "quarantine.jsonl"

    def _append_quarantine(self, records: bytes) -> None:
        with open(self.quarantine_path, "ab") as f:
            f.write(records)
            f.flush()
            os.fsync(f.fileno())

    async def aclose(self) -> None:
        await self._close(self._spool)
