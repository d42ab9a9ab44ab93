"""Server-sent events, parsed on bytes.

Working on bytes, and decoding only whole events, is what keeps a UTF-8 character that the
upstream split across two TCP writes intact: nothing is decoded until its event is complete.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator

Event = tuple[bytes, bytes]
"""An event's exact bytes (its terminator included) and its data."""

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


async def sse_data(chunks: AsyncIterable[bytes]) -> AsyncIterator[list[bytes]]:
    """Yield the ``data`` payloads of the events completed by each network read, as one list:
    relaying a burst with one write instead of one per event saves a syscall per chunk.
    Comments and other fields are skipped."""
    buffer = b""
    async for piece in chunks:
        buffer += piece
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
            if buffer.endswith(b"\r"):
                continue  # a CRLF may be split: wait for the LF
        if b"\n\n" not in buffer:
            continue
        *events, buffer = buffer.split(b"\n\n")
        batch = []
        for event in events:
            if event.startswith(b"data: ") and b"\n" not in event:
                batch.append(event[6:])  # the common single-line event, without a call
            elif (data := _event_data(event)) is not None:
                batch.append(data)
        if batch:
            yield batch
    if buffer.strip():
        data = _event_data(buffer)
        if data is not None:
            yield [data]


def _event_data(event: bytes) -> bytes | None:
    if event.startswith(b"data:") and b"\n" not in event:  # the common single-line event
        return event[6:] if event[5:6] == b" " else event[5:]
    lines = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            lines.append(line[6:] if line[5:6] == b" " else line[5:])
    return b"\n".join(lines) if lines else None


async def sse_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[list[Event]]:
    """Like :func:`sse_data`, but each event comes with its exact bytes (terminator
    included), so that a relayed stream reaches the client as the upstream wrote it:
    ``(event, data)`` for every event a network read completed. Events without data
    (comments) come with ``b""`` as data: they are relayed too."""
    buffer = b""
    async for piece in chunks:
        buffer += piece
        batch = _split(buffer)
        if batch:
            buffer = buffer[sum(len(event) for event, _ in batch):]
            yield batch
    if buffer.strip():
        yield [(buffer, _data(buffer))]


def _split(buffer: bytes) -> list[Event]:
    """The whole events at the start of ``buffer``. One separator throughout (LF, as
    Anthropic sends, or CRLF, as Google does) is split without a regular expression."""
    sep = None
    if b"\r" not in buffer:
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
    if b"\r" in event:
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
