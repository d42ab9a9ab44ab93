"""Server-sent events with their bytes: a relayed stream must reach the client exactly as the
upstream wrote it, so each event is kept whole (``event:`` line, ``data:`` line, blank line)
next to its data. :func:`polyroute.adapters.sse.sse_data` keeps only the data."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

Event = tuple[bytes, bytes]
"""(the event's bytes, ending with its blank line; its data)"""


async def sse_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[list[Event]]:
    """The events each network read completed, as one list (one write to relay them).
    Events without data (comments, keep-alives) are dropped. CRLF line ends are read as LF
    (and relayed so): an upstream that sends them is not relayed byte for byte."""
    buffer = b""
    async for piece in chunks:
        buffer += piece
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
            if buffer.endswith(b"\r"):
                continue  # a CRLF may be split: wait for the LF
        if b"\n\n" not in buffer:
            continue
        *blocks, buffer = buffer.split(b"\n\n")
        batch = [(block + b"\n\n", data) for block in blocks
                 if (data := _data(block)) is not None]
        if batch:
            yield batch
    if buffer.strip() and (data := _data(buffer)) is not None:
        yield [(buffer.rstrip(b"\n") + b"\n\n", data)]


def _data(block: bytes) -> bytes | None:
    lines = [line[6:] if line[5:6] == b" " else line[5:]
             for line in block.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None
