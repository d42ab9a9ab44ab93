"""Server-sent events, parsed on bytes.

Working on bytes, and decoding only whole events, is what keeps a UTF-8 character that the
upstream split across two TCP writes intact: nothing is decoded until its event is complete.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


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
