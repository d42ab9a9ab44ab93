"""The one stream loop every adapter runs: its framing (SSE, AWS eventstream …) cuts the body
into events, its :class:`ChunkTranslator` turns each into canonical chunks, and this module
does the rest the same way for every protocol:

- a batch is what one network read completed, relayed with one write, never empty;
- an error (an error event, a corrupt frame) still delivers what arrived before it;
- the stream's own end (``[DONE]``, ``message_stop``, Bedrock's ``metadata``) stops reading;
- a body that ends before a finish reason is an ``UpstreamProtocolError``, never an answer;
- one that ends after it is whole: the translator closes it (its usage chunk, if not sent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Generic, Protocol, TypeVar

from polyroute.errors import UpstreamError, UpstreamProtocolError
from polyroute.model.chat import ChatChunk

Event = TypeVar("Event", contravariant=True)


class ChunkTranslator(Protocol[Event]):
    @property
    def finished(self) -> bool:
        """A finish reason has arrived: the answer is whole even if the stream ends early."""
        ...

    @property
    def stopped(self) -> bool:
        """The stream's last event has arrived: nothing after it is read."""
        ...

    def feed(self, event: Event) -> list[ChatChunk]:
        """The chunks ``event`` stands for (often one, sometimes none); raises an
        ``UpstreamError`` for an error the upstream reports."""
        ...

    def close(self) -> list[ChatChunk]:
        """What ends a finished stream whose last event never came (the usage chunk)."""
        ...


Inner = TypeVar("Inner")


class Wrapping(Generic[Inner]):
    """A translator around a protocol's own (a relay, which pins the upstream's bytes on the
    chunks it makes): when the stream is finished or stopped, and how it closes, are the
    inner translator's."""

    __slots__ = ("_inner",)

    def __init__(self, inner: ChunkTranslator[Inner]) -> None:
        self._inner = inner

    @property
    def finished(self) -> bool:
        return self._inner.finished

    @property
    def stopped(self) -> bool:
        return self._inner.stopped

    def close(self) -> list[ChatChunk]:
        return self._inner.close()


def ended_early(deployment: str) -> UpstreamProtocolError:
    return UpstreamProtocolError("the upstream stream ended before the answer finished",
                                 deployment=deployment)


class Driven(Generic[Event]):
    """Canonical chunk batches from ``reads``: the events each network read completed, as the
    protocol's framing cuts them (lazily: a corrupt frame raises where it stands).

    An iterator class, not an async generator: one runs per stream, and an async generator
    costs an interpreter hook at its first step and a task to finalize it when it is left
    unfinished. Closing it only stops it: the reads belong to whoever opened the body."""

    __slots__ = ("_deployment", "_done", "_error", "_reads", "_translator")

    def __init__(self, reads: AsyncIterator[Iterable[Event]], translator: ChunkTranslator[Event],
                 deployment: str) -> None:
        self._reads = reads
        self._translator = translator
        self._deployment = deployment
        self._done = False
        self._error: UpstreamError | None = None
        """Raised by the next read: the batch before it was delivered first."""

    def __aiter__(self) -> Driven[Event]:
        return self

    async def __anext__(self) -> list[ChatChunk]:
        if self._error is not None:
            error, self._error = self._error, None
            self._done = True
            raise error
        translator = self._translator
        while not self._done:
            try:
                events = await self._reads.__anext__()
            except StopAsyncIteration:
                self._done = True
                if not translator.finished:
                    raise ended_early(self._deployment) from None
                tail = translator.close()
                if tail:
                    return tail
                break
            except BaseException:
                self._done = True
                raise
            batch: list[ChatChunk] = []
            try:
                for event in events:
                    batch += translator.feed(event)
                    if translator.stopped:
                        self._done = True
                        break
            except UpstreamError as exc:
                if not batch:
                    self._done = True
                    raise
                self._error = exc  # what arrived before the error still counts
                return batch
            if batch:  # a read of only pings says nothing to relay
                return batch
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._done = True
        self._error = None


def drive(reads: AsyncIterator[Iterable[Event]], translator: ChunkTranslator[Event],
          deployment: str) -> Driven[Event]:
    """A protocol's stream, read with its framing (``reads``) and its ``translator``."""
    return Driven(reads, translator, deployment)
