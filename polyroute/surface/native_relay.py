"""What the relays of a same-dialect passthrough share (Responses, Converse): the first batch
decides whether the upstream's own bytes are relayed (``ChatChunk.native``) or the dialect's
encoder writes the stream; a relayed stream that another attempt had to finish hands over to
the encoder (``_take_over``), which ends it in polyroute's own words."""

from __future__ import annotations

import abc
from typing import Generic, Protocol, TypeVar

from polyroute.errors import GatewayError
from polyroute.model.chat import ChatChunk


class Encoder(Protocol):
    def start(self) -> bytes: ...

    def feed(self, batch: list[ChatChunk]) -> bytes: ...

    def finish(self) -> bytes: ...

    def fail(self, exc: GatewayError) -> bytes: ...


E = TypeVar("E", bound=Encoder)


class NativeRelay(abc.ABC, Generic[E]):
    def __init__(self, encoder: E) -> None:
        self._encoder = encoder
        self._relaying: bool | None = None  # undecided until the first batch
        self._last = b""  # the last relayed event or frame
        self._ended = False  # the upstream's own end was relayed
        self._taken_over = False

    def start(self) -> bytes:
        return b""  # relayed from the upstream, or the encoder's, with the first batch

    def feed(self, batch: list[ChatChunk]) -> bytes:
        if self._relaying is None and batch:
            self._relaying = batch[0].native is not None
            if not self._relaying:
                return self._encoder.start() + self._encoder.feed(batch)
        if not self._relaying:
            return self._encoder.feed(batch)
        return self._relay(batch)

    def finish(self) -> bytes:
        if self._relaying is None:
            return self._encoder.start() + self._encoder.finish()
        if self._ended:
            return b""
        self._take_over()
        return self._encoder.finish()

    def fail(self, exc: GatewayError) -> bytes:
        if self._relaying is None:
            return self._encoder.start() + self._encoder.fail(exc)
        self._take_over()
        return self._encoder.fail(exc)

    @abc.abstractmethod
    def _relay(self, batch: list[ChatChunk]) -> bytes:
        """A batch of a relayed stream: native bytes as they are, the rest encoded."""

    @abc.abstractmethod
    def _take_over(self) -> None:
        """Hand the stream to the encoder, numbered after what was relayed."""
