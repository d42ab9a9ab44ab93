"""What the ledger and the audit log share: a spool written on the request path, drained into
the database by one background task.

The task wakes when asked (or every ``interval_s``), flushes, and backs off while the database
is unavailable (the records wait on disk, not in memory). ``drain`` reads the spool segment
by segment and commits a span only once its lines are handled, so a crash re-reads it (the
inserts are idempotent). Closing cancels the task, flushes for at most 5 s and syncs the spool.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from polyroute.storage.database import StoreUnavailable
from polyroute.storage.spool import Spool

_MAX_BACKOFF_S = 5.0
_CLOSE_FLUSH_S = 5.0


class SpoolDrain(abc.ABC):
    """The background half of a spooled writer. Subclasses say what ``flush`` does."""

    def __init__(self, name: str, waiting: str, interval_s: float) -> None:
        self._name = name
        self._log = logging.getLogger(f"polyroute.{name}")
        self._waiting = waiting
        """What waits in the spool while the database is away ("records", "refusals")."""
        self._interval = interval_s
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()  # two readers of one spool would commit a span twice
        self.failing = False

    @abc.abstractmethod
    async def flush(self) -> None:
        """Write what the spool holds to the database (each subclass its own rows)."""

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"polyroute-{self._name}")

    @property
    def healthy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _flushed(self) -> None:  # noqa: B027 (an optional hook: by default nothing)
        """After each flush that succeeded (the ledger syncs its spool here)."""

    async def _run(self) -> None:
        backoff = self._interval
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except StoreUnavailable as exc:
                if not self.failing:
                    self._log.warning("%s: the database is unavailable (%s); %s wait in the "
                                      "spool", self._name, exc, self._waiting)
                self.failing = True
                backoff = min(_MAX_BACKOFF_S, max(backoff * 2, 0.25))
                continue
            except Exception:
                self._log.exception("%s flush failed", self._name)
                backoff = min(_MAX_BACKOFF_S, max(backoff * 2, 0.25))
                continue
            if self.failing:
                self._log.warning("%s: the database is back; the spool is flushed", self._name)
            self.failing = False
            backoff = self._interval
            await self._flushed()

    @staticmethod
    async def drain(spool: Spool, handle: Callable[[list[bytes]], Awaitable[None]]) -> None:
        """Hand each spooled segment's lines to ``handle``, then commit them."""
        loop = asyncio.get_running_loop()
        while (got := await loop.run_in_executor(None, spool.read)) is not None:
            segment, lines, span = got
            await handle(lines)
            spool.committed(segment, span)

    async def _close(self, spool: Spool | None) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(StoreUnavailable, TimeoutError):
            async with asyncio.timeout(_CLOSE_FLUSH_S):
                await self.flush()
        if spool is not None:
            await asyncio.get_running_loop().run_in_executor(None, spool.sync)
            spool.close()
