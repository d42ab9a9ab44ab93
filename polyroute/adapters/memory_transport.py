"""A transport that answers from a script, in memory: adapters, the attempt loop and hedging
tested in milliseconds, without sockets. Each request gets the next :class:`Scripted` answer
its script gives: a status, headers and body pieces, with delays, a refused connection, a
timeout, or a connection that breaks off mid-body — each raised exactly as the real
transport raises it (:mod:`.transport`'s errors)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from multidict import CIMultiDict, CIMultiDictProxy

from polyroute.adapters.transport import (
    UpstreamRequest,
    UpstreamResponse,
    broke_off,
    connect_failed,
    timed_out,
)


@dataclass(frozen=True, slots=True)
class Scripted:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    chunks: tuple[bytes, ...] = ()
    """The body as the network would deliver it: one read per piece."""
    delay_s: float = 0.0
    """Before the status line (time to first byte)."""
    chunk_delay_s: float = 0.0
    """Before each piece of the body."""
    fail: str | None = None
    """``"connect"`` (refused) or ``"timeout"``: raised by ``send`` after ``delay_s``."""
    break_after: int | None = None
    """The connection breaks off after this many pieces."""

    @classmethod
    def body(cls, data: bytes, status: int = 200, **headers: str) -> Scripted:
        return cls(status=status, headers=headers, chunks=(data,))


Script = Callable[[UpstreamRequest], Scripted]
"""The answer to a request; raise (e.g. ``AssertionError``) for a request none was meant for."""


def in_order(*answers: Scripted) -> Script:
    """Answers in the order given, whatever was asked; the last one repeats."""
    queue = deque(answers)

    def next_answer(_: UpstreamRequest) -> Scripted:
        return queue.popleft() if len(queue) > 1 else queue[0]
    return next_answer


def by_url(routes: Mapping[str, Scripted | Iterable[Scripted]]) -> Script:
    """The answer (or the answers, in order) of the first route whose key the URL contains."""
    scripts = {key: value if isinstance(value, Scripted) else in_order(*value)
               for key, value in routes.items()}

    def route(request: UpstreamRequest) -> Scripted:
        url = str(request.url)
        for key, answer in scripts.items():
            if key in url:
                return answer if isinstance(answer, Scripted) else answer(request)
        raise AssertionError(f"no scripted answer for {request.method} {url}")
    return route


class MemoryTransport:
    def __init__(self, script: Script) -> None:
        self._script = script
        self.sent: list[UpstreamRequest] = []
        """Every request, in the order sent."""
        self.open = 0
        """Responses not yet released (a stream left open leaks a connection)."""
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True

    @asynccontextmanager
    async def send(self, request: UpstreamRequest) -> AsyncIterator[UpstreamResponse]:
        self.sent.append(request)
        answer = self._script(request)
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        if answer.fail == "connect":
            raise connect_failed(request.deployment, "connection refused (scripted)")
        if answer.fail == "timeout":
            raise timed_out(request.deployment)
        self.open += 1
        try:
            yield UpstreamResponse(answer.status, CIMultiDictProxy(CIMultiDict(answer.headers)),
                                   _body(answer, request.deployment))
        finally:
            self.open -= 1


async def _body(answer: Scripted, deployment: str) -> AsyncIterator[bytes]:
    for i, piece in enumerate(answer.chunks):
        if answer.break_after is not None and i >= answer.break_after:
            break
        if answer.chunk_delay_s:
            await asyncio.sleep(answer.chunk_delay_s)
        yield piece
    if answer.break_after is not None:
        raise broke_off(deployment)
