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

from collections.abc import AsyncGenerator, AsyncIterator, Iterable
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


async def drive(
    reads: AsyncIterator[Iterable[Event]], translator: ChunkTranslator[Event], deployment: str
) -> AsyncGenerator[list[ChatChunk], None]:
    """Canonical chunk batches from ``reads``: the events each network read completed, as the
    protocol's framing cuts them (lazily: a corrupt frame raises where it stands)."""
    async for events in reads:
        batch: list[ChatChunk] = []
        try:
            for event in events:
                batch += translator.feed(event)
                if translator.stopped:
                    break
        except UpstreamError:
            if batch:
                yield batch  # what arrived before the error still counts
            raise
        if batch:  # a read of only pings says nothing to relay
            yield batch
        if translator.stopped:
            return
    if not translator.finished:
        raise ended_early(deployment)
    tail = translator.close()
    if tail:
        yield tail
