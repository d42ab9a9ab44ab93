"""Server-sent events, parsed on bytes.

Working on bytes, and decoding only whole events, is what keeps a UTF-8 character that the
upstream split across two TCP writes intact: nothing is decoded until its event is complete.

Both readers are iterator classes, not async generators: a stream is read once per request,
and an async generator costs an interpreter hook at its first step and, when it is left
unfinished (a stream stops at its end event, before the body's end), a task to finalize it.
They look for bytes with ``find``, not ``in``: CPython 3.11's ``bytes.__contains__`` first
tries its operand as an integer and formats the ``TypeError`` it then discards.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator

Event = tuple[bytes, bytes]
"""An event's exact bytes (its terminator included) and its data."""

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class _Reader:
    """What both readers share: the body's pieces, the bytes of an unfinished event, and
    whether the body has ended (after which every read is the end)."""

    __slots__ = ("_buffer", "_ended", "_pieces")

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._pieces = chunks.__aiter__()
        self._buffer = b""
        self._ended = False

    async def _piece(self) -> bytes | None:
        """The body's next piece; None at its end (once: the caller then flushes)."""
        try:
            return await self._pieces.__anext__()
        except StopAsyncIteration:
            self._ended = True
            return None
        except BaseException:
            self._ended = True  # a broken body is read no further, as a generator's would be
            raise


class _Data(_Reader):
    __slots__ = ()

    def __aiter__(self) -> _Data:
        return self

    async def __anext__(self) -> list[bytes]:
        while not self._ended:
            piece = await self._piece()
            if piece is None:
                break
            buffer = self._buffer + piece
            if buffer.find(b"\r") >= 0:
                buffer = buffer.replace(b"\r\n", b"\n")
                if buffer.endswith(b"\r"):
                    self._buffer = buffer
                    continue  # a CRLF may be split: wait for the LF
            end = buffer.rfind(b"\n\n")
            if end < 0:
                self._buffer = buffer
                continue
            *events, self._buffer = buffer.split(b"\n\n")
            # The common case, without a call per event: every event one "data: " line (the
            # newlines before ``end`` are then exactly the separators').
            batch = [event[6:] for event in events if event[:6] == b"data: "]
            if len(batch) != len(events) or buffer.count(b"\n", 0, end) != 2 * len(events) - 2:
                batch = [data for event in events if (data := _event_data(event)) is not None]
            if batch:
                return batch
        buffer, self._buffer = self._buffer, b""
        if buffer.strip():
            data = _event_data(buffer)
            if data is not None:
                return [data]
        raise StopAsyncIteration


def sse_data(chunks: AsyncIterable[bytes]) -> AsyncIterator[list[bytes]]:
    """The ``data`` payloads of the events completed by each network read, as one list:
    relaying a burst with one write instead of one per event saves a syscall per chunk.
    Comments and other fields are skipped."""
    return _Data(chunks)


def _event_data(event: bytes) -> bytes | None:
    if event.startswith(b"data:") and event.find(b"\n") < 0:  # the common single-line event
        return event[6:] if event[5:6] == b" " else event[5:]
    lines = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            lines.append(line[6:] if line[5:6] == b" " else line[5:])
    return b"\n".join(lines) if lines else None


class _Events(_Reader):
    __slots__ = ()

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> list[Event]:
        while not self._ended:
            piece = await self._piece()
            if piece is None:
                break
            buffer = self._buffer + piece
            batch = _split(buffer)
            if batch:
                self._buffer = buffer[sum(len(event) for event, _ in batch):]
                return batch
            self._buffer = buffer
        buffer, self._buffer = self._buffer, b""
        if buffer.strip():
            return [(buffer, _data(buffer))]
        raise StopAsyncIteration


def sse_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[list[Event]]:
    """Like :func:`sse_data`, but each event comes with its exact bytes (terminator
    included), so that a relayed stream reaches the client as the upstream wrote it:
    ``(event, data)`` for every event a network read completed. Events without data
    (comments) come with ``b""`` as data: they are relayed too."""
    return _Events(chunks)


def _split(buffer: bytes) -> list[Event]:
    """The whole events at the start of ``buffer``. One separator throughout (LF, as
    Anthropic sends, or CRLF, as Google does) is split without a regular expression."""
    sep = None
    if buffer.find(b"\r") < 0:
        sep = b"\n\n"
    elif buffer.count(b"\r") == buffer.count(b"\n") == buffer.count(b"\r\n"):
        sep = b"\r\n\r\n"
    if sep is not None:
        *events, _ = buffer.split(sep)
        return [(event + sep, _data(event)) for event in events]
    batch, start = [], 0
    for end in _EVENT_END.finditer(buffer):
        if end.group() == b"\r\r" and end.end() == len(buffer):
            break  # maybe a CR of a CRLF whose LF has not arrived
        batch.append((buffer[start:end.end()], _data(buffer[start:end.start()])))
        start = end.end()
    return batch


def _data(event: bytes) -> bytes:
    """The data of one event (without its terminator); ``b""`` for a comment."""
    if event.find(b"\r") >= 0:
        event = event.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if event.startswith(b"data:"):
        start = 0
    else:
        start = event.find(b"\ndata:") + 1
        if start == 0:
            return b""
    end = event.find(b"\n", start)
    if end == -1 or event.find(b"\ndata:", end) == -1:  # the common single data line
        line = event[start + 5:] if end == -1 else event[start + 5:end]
        return line[1:] if line[:1] == b" " else line
    lines = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            lines.append(line[6:] if line[5:6] == b" " else line[5:])
    return b"\n".join(lines)
