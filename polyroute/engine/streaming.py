"""Streams: opening one up to its first content, and relaying the rest under a stall timeout.

The point of no return is the first content. ``open_stream`` holds back everything before it
(the role-only chunk OpenAI sends first, keep-alives) so that a deployment that connects but
never produces a token can still be swapped for another, invisibly to the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from polyroute.engine.estimate import output_units
from polyroute.errors import (
    StreamInterrupted,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from polyroute.model.chat import ChatChunk
from polyroute.model.record import RequestRecord

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


class LiveStream:
    """A stream that is already answering, as batches of chunks. Whoever consumes it must
    ``aclose()`` it; that closes the upstream connection (so a client that left stops the
    upstream too) and settles the request exactly once."""

    def __init__(
        self,
        opened: OpenedStream,
        record: RequestRecord,
        *,
        stall_s: float,
        deadline: float,
        on_failure: Callable[[UpstreamError], None],
        settle: Callable[[], None],
    ) -> None:
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
        self.last: ChatChunk | None = None
        """The latest chunk relayed: its id and model label an error event, should one come."""

    def __aiter__(self) -> LiveStream:
        return self

    async def __anext__(self) -> list[ChatChunk]:
        if self._held:
            batch = self._held.pop(0)
        else:
            if self._closed:
                raise StopAsyncIteration
            batch = await self._next_from_upstream()
        self._record.output_units += output_units(batch)  # charged if no usage comes
        for chunk in batch:
            if chunk.usage is not None:
                self._record.usage = chunk.usage
            for choice in chunk.choices:
                if choice.finish_reason:
                    self._finished = True
        if batch:
            self.last = batch[-1]
        return batch

    async def _next_from_upstream(self) -> list[ChatChunk]:
        loop = asyncio.get_running_loop()
        wait = min(self._stall_s, FINISHED_TAIL_S) if self._finished else self._stall_s
        limit = min(loop.time() + wait, self._deadline)
        try:
            async with asyncio.timeout_at(limit):
                return await anext(self._upstream)
        except StopAsyncIteration:
            self._complete = True
            await self.aclose()
            raise
        except TimeoutError:
            if self._finished:  # the answer was whole; only its ending went missing
                self._complete = True
                await self.aclose()
                raise StopAsyncIteration from None
            reason = (f"the stream stalled for {self._stall_s:g} s" if limit < self._deadline
                      else "the request's deadline passed mid-answer")
            await self._interrupted(UpstreamTimeout(reason))
        except UpstreamError as exc:
            await self._interrupted(exc)
        raise AssertionError("unreachable")

    async def _interrupted(self, exc: UpstreamError) -> None:
        self._record.status, self._record.error_class = 502, "stream_interrupted"
        self._on_failure(exc)
        await self.aclose()
        raise StreamInterrupted(
            f"the upstream failed after the answer had started: {exc.message}") from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        record = self._record
        if not self._complete and record.error_class is None:
            record.status, record.error_class = CLIENT_CLOSED, "client_closed"
        try:
            await self._upstream.aclose()  # type: ignore[attr-defined]
        finally:
            self._settle()
