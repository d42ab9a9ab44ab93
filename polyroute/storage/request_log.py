"""The request log: one row per request, written in batches by a background thread.

``observe`` only appends to a list, so a response never waits on the disk. The queue is
bounded; when storage falls that far behind, rows are dropped and counted rather than letting
memory grow without limit. (The spend ledger, which must lose nothing, gets a durable spool of
its own.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec

from polyroute.model.record import RequestRecord
from polyroute.observability.metrics import Metrics
from polyroute.storage.sql import INSERT_REQUEST_LOG

log = logging.getLogger("polyroute.request_log")
_encode = msgspec.json.Encoder().encode


def _row(r: RequestRecord) -> tuple[Any, ...]:
    u = r.usage
    chain = _encode([[a.deployment, a.error_class or "ok"] for a in r.attempts]).decode()
    return (
        r.request_id, r.started_at, r.endpoint, r.requested_model, r.model_group, r.vendor,
        r.deployment, r.upstream_model, int(r.stream), r.status, r.error_class,
        len(r.attempts), chain, r.latency_s * 1000.0,
        r.ttft_s * 1000.0 if r.ttft_s is not None else None,
        u.prompt_tokens if u else None, u.completion_tokens if u else None,
        u.cached_tokens if u else None, u.reasoning_tokens if u else None, r.route,
        r.client_request_id,
    )


class RequestLog:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        metrics: Metrics,
        *,
        flush_interval_s: float = 0.5,
        flush_batch: int = 500,
        max_pending: int = 100_000,
    ) -> None:
        self._connect = connect
        self._metrics = metrics
        self._interval = flush_interval_s
        self._batch = flush_batch
        self._max_pending = max_pending
        self._pending: list[RequestRecord] = []
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="polyroute-request-log")
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def observe(self, record: RequestRecord) -> None:
        if len(self._pending) >= self._max_pending:
            self._metrics.request_log_dropped.inc()
            return
        self._pending.append(record)
        if len(self._pending) >= self._batch:
            self._wake.set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, self._connect)
        self._task = asyncio.create_task(self._run(), name="polyroute-request-log")

    @property
    def healthy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self._metrics.request_log_pending.set(0)
        rows = [_row(r) for r in batch]
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._write, rows)
        except sqlite3.Error:
            log.exception("request log write failed; %d rows lost", len(rows))
            self._metrics.request_log_dropped.inc(amount=len(rows))
            return
        self._metrics.request_log_written.inc(amount=len(rows))

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        assert self._conn is not None
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany(INSERT_REQUEST_LOG, rows)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)
