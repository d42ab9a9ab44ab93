"""Streams: opening one up to its first content, and relaying the rest under a stall timeout.

The point of no return is the first content. ``open_stream`` holds back everything before it
(the role-only chunk OpenAI sends first, keep-alives) so that a deployment that connects but
never produces a token can still be swapped for another, invisibly to the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from polyroute.config import Deployment
from polyroute.config.compiled import Timeouts
from polyroute.engine.deadlines import Pace
from polyroute.engine.recovery import Recovery
from polyroute.engine.resume import Resume, Transcript
from polyroute.errors import (
    GatewayError,
    StreamInterrupted,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from polyroute.model.chat import ChatChunk
from polyroute.model.record import RequestRecord
from polyroute.model.usage import Usage

log = logging.getLogger(__name__)

CLIENT_CLOSED = 499  # nginx's convention: the client went away before the answer ended
FINISHED_TAIL_S = 2.0
"""After every choice has its finish reason, how long to wait for the usage chunk and the end
of the stream before ending it ourselves: an upstream that never sends [DONE] nor closes must
not turn a complete answer into a stalled one."""

Batches = AsyncIterator[list[ChatChunk]]


def has_content(batch: list[ChatChunk]) -> bool:
    for chunk in batch:
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content or delta.tool_calls or delta.refusal or choice.finish_reason:
                return True
        if not chunk.choices and chunk.usage is not None:
            return True  # an answer that ended empty: nothing more will come
    return False


@dataclass(slots=True)
class OpenedStream:
    held: list[list[ChatChunk]]
    upstream: Batches

    async def aclose(self) -> None:
        await self.upstream.aclose()  # type: ignore[attr-defined]


async def open_stream(upstream: Batches, ttft_s: float, deadline: float) -> OpenedStream:
    """Read ``upstream`` up to and including its first content, within ``ttft_s`` and the
    request's ``deadline`` (event-loop time). Closes the upstream on any failure."""
    held: list[list[ChatChunk]] = []
    loop = asyncio.get_running_loop()
    limit = min(loop.time() + ttft_s, deadline)
    try:
        async with asyncio.timeout_at(limit):
            while True:
                try:
                    batch = await anext(upstream)
                except StopAsyncIteration:
                    raise UpstreamProtocolError("the upstream sent an empty stream") from None
                held.append(batch)
                if has_content(batch):
                    return OpenedStream(held, upstream)
    except TimeoutError:
        await upstream.aclose()  # type: ignore[attr-defined]
        raise UpstreamTimeout(f"no first token within {ttft_s:g} s" if limit < deadline
                              else "the request's deadline passed before the first token"
                              ) from None
    except BaseException:
        await upstream.aclose()  # type: ignore[attr-defined]
        raise


class StreamCheck(Protocol):
    """Answer guardrails over a stream (``engine.guardrails.StreamGuard``)."""

    async def feed(self, batch: list[ChatChunk]) -> list[list[ChatChunk]]: ...

    async def end(self) -> list[list[ChatChunk]]: ...


class LiveStream:
    """A stream that is already answering, as batches of chunks. Whoever consumes it must
    ``aclose()`` it; that closes the upstream connection (so a client that left stops the
    upstream too) and settles the request exactly once.

    With a ``recovery``, an upstream that fails mid-answer is replaced by another attempt that
    finishes the same answer (:mod:`.recovery`); the consumer sees one stream."""

    def __init__(
        self,
        opened: OpenedStream,
        record: RequestRecord,
        *,
        stall_s: float,
        deadline: float,
        on_failure: Callable[[UpstreamError], None],
        settle: Callable[[], None],
        recovery: Recovery | None = None,
        deployment: Deployment | None = None,
        pace: tuple[Pace, Timeouts] | None = None,
    ) -> None:
        self._pace = pace
        """Learnt deadlines: the stall deadline is the current deployment's own."""
        self._held = opened.held
        self._upstream = opened.upstream
        self._record = record
        self._stall_s = stall_s
        self._deadline = deadline
        self._on_failure = on_failure
        self._settle = settle
        self._complete = False
        self._closed = False
        self._finished = False
        self._recovery = recovery
        self._deployment = deployment
        self._sent = Transcript()
        """What the client was sent: for a recovery, and counted once at the end for the
        record (:meth:`Transcript.units`), rather than batch by batch."""
        self._resume: Resume | None = None
        """The filter of the attempt that took over, once one has."""
        self._usage: Usage | None = None
        """The current attempt's own usage (the client's block may be a sum)."""
        self._billed = False
        """The current attempt's charge is already in the recovery's billing."""
        self.last: ChatChunk | None = None
        """The latest chunk relayed: its id and model label an error event, should one come."""
        self.rewrite: Callable[[list[ChatChunk]], list[ChatChunk]] | None = None
        """Changes what the client sees after recovery noted what the upstream sent (a
        governance policy restoring redacted values)."""
        self.guard: StreamCheck | None = None
        """Awaited on each batch before ``rewrite``: releases batches when the answer
        guardrails have checked them, or raises (the stream then ends with an error)."""
        self._ready: deque[list[ChatChunk]] = deque()
        self._drained = False
        """The upstream ended and the guard released what it held."""
        self._drained_upstream = False
        """The upstream ended; with a guard, the record is settled by ``aclose`` only."""

    def __aiter__(self) -> LiveStream:
        return self

    async def __anext__(self) -> list[ChatChunk]:
        if self.guard is None:
            batch = await self._next()
        else:
            if not await self._fill():
                raise StopAsyncIteration
            batch = self._ready.popleft()
        if self.rewrite is not None:
            batch = self.rewrite(batch)
        self.last = batch[-1]
        return batch

    async def prime(self) -> None:
        """With a guard: read until it releases the first batch, so that an answer it refuses
        before anything was released is refused before the response's headers are sent."""
        if self.guard is not None:
            await self._fill()

    async def _fill(self) -> bool:
        """Feed the guard until it has released something; False at the end."""
        guard = self.guard
        assert guard is not None
        while not self._ready:
            if self._drained:
                return False
            try:
                batch = await self._next()
            except StopAsyncIteration:
                self._drained = True
                self._ready.extend(await self._guarded(guard.end()))
                continue
            self._ready.extend(await self._guarded(guard.feed(batch)))
        return True

    async def _guarded(self, released: Awaitable[list[list[ChatChunk]]]
                       ) -> list[list[ChatChunk]]:
        try:
            return await released
        except GatewayError as exc:  # refused (or the guardrail failed closed) mid-answer
            self._record.status, self._record.error_class = exc.status, exc.error_class
            await self.aclose()
            raise

    async def _next(self) -> list[ChatChunk]:
        """The upstream's next batch (recovered, counted and observed), as it came."""
        while True:
            if self._held:
                batch = self._held.pop(0)
            else:
                if self._closed or self._drained_upstream:
                    raise StopAsyncIteration
                try:
                    batch = await self._read()
                    if self._resume is not None:
                        batch = self._resume.feed(batch)
                except UpstreamError as exc:
                    await self._recover_or_raise(exc)  # its held batches come next
                    continue
            if batch:
                break
        for chunk in batch:
            if chunk.usage is not None:
                self._usage = chunk.usage
                if self._recovery is not None and self._recovery.billing.charges:
                    chunk.usage = self._recovery.billing.total(chunk.usage)
                    # the client's one usage block: every attempt's sum
                    chunk.raw = chunk.native = None
                self._record.usage = chunk.usage
        sent = self._sent
        sent.observe(batch)
        self._finished = sent.finished  # a finish reason in any choice
        return batch

    async def _read(self) -> list[ChatChunk]:
        loop = asyncio.get_running_loop()
        stall_s, pace, dep = self._stall_s, self._pace, self._deployment
        if pace is not None and dep is not None:
            stall_s = pace[0].stall_s(dep.upstream, pace[1])
        wait = min(stall_s, FINISHED_TAIL_S) if self._finished else stall_s
        now = loop.time()
        limit = min(now + wait, self._deadline)
        try:
            async with asyncio.timeout_at(limit):
                batch = await anext(self._upstream)
            if pace is not None and dep is not None and not self._finished:
                pace[0].gap(dep.upstream, loop.time() - now)
            return batch
        except StopAsyncIteration:
            await self._ended()
            raise
        except TimeoutError:
            if self._finished:  # the answer was whole; only its ending went missing
                await self._ended()
                raise StopAsyncIteration from None
            reason = (f"the stream stalled for {stall_s:.3g} s" if limit < self._deadline
                      else "the request's deadline passed mid-answer")
            raise UpstreamTimeout(reason) from None

    async def _ended(self) -> None:
        self._complete = True
        if self.guard is None:
            await self.aclose()
        else:  # the guard may still refuse what it holds: the consumer's aclose settles
            self._drained_upstream = True
            await self._upstream.aclose()  # type: ignore[attr-defined]

    async def _recover_or_raise(self, exc: UpstreamError) -> None:
        """Hand the answer over to another attempt, or end the stream with ``exc``."""
        self._on_failure(exc)
        recovery, sent, broken = self._recovery, self._sent, self._deployment
        why_not = None
        if recovery is None or broken is None:
            why_not = "recovery is off"
        else:
            why_not = recovery.why_not(exc, sent)
        if why_not is None:
            assert recovery is not None and broken is not None
            await self._upstream.aclose()  # type: ignore[attr-defined]
            self._bill(broken)
            try:
                resumed, dep = await recovery.resume(broken, sent)
            except GatewayError as failed:
                why_not = f"no other attempt could finish the answer ({failed.message})"
            else:
                log.info("stream of %s resumed by %s on %s after: %s",
                         self._record.request_id, resumed.resume.mode, dep.name, exc.message)
                self._deployment, self._resume = dep, resumed.resume
                self._upstream, self._held = resumed.upstream, resumed.held
                self._on_failure, self._usage, self._billed = resumed.on_failure, None, False
                return
        log.info("stream of %s not resumed (%s) after: %s", self._record.request_id, why_not,
                 exc.message)
        self._record.status, self._record.error_class = 502, "stream_interrupted"
        await self.aclose()
        raise StreamInterrupted(
            f"the upstream failed after the answer had started: {exc.message}") from exc

    def _bill(self, dep: Deployment) -> None:
        """Close the books of the attempt that just ended (or broke) on ``dep``."""
        recovery = self._recovery
        if recovery is None or self._billed:
            return
        self._billed = True
        resume, sent = self._resume, self._sent
        prompt = resume.prompt_tokens if resume is not None else recovery.prompt_tokens
        chars = resume.chars if resume is not None else sent.chars
        recovery.billing.add(dep.vendor, dep.model, self._usage, prompt_tokens=prompt,
                             chars=chars)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        record = self._record
        record.output_units += self._sent.units()  # charged if no usage came
        if not self._complete and record.error_class is None:
            record.status, record.error_class = CLIENT_CLOSED, "client_closed"
        try:
            await self._upstream.aclose()  # type: ignore[attr-defined]
        finally:
            recovery = self._recovery
            if recovery is not None and self._resume is not None and self._deployment:
                self._bill(self._deployment)
                record.charges = recovery.billing.charges
                record.usage = recovery.billing.total()
            self._settle()
