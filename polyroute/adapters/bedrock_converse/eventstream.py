"""``application/vnd.amazon.eventstream``: AWS's binary framing of a streamed response.

    prelude   total length (uint32 BE) · headers length (uint32 BE) · CRC32 of those 8 bytes
    headers   name length (uint8) · name · value type (uint8) · value   (repeated)
    payload   the event's bytes (JSON for Bedrock)
    trailer   CRC32 of everything before it

Both checksums are verified: a frame that fails one is an :class:`UpstreamProtocolError`, never
skipped — skipping would silently drop part of an answer. Pure and incremental: feed network
reads as they come, get whole messages back.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass

from polyroute.adapters.stream_driver import ended_early
from polyroute.errors import UpstreamProtocolError

_PRELUDE = struct.Struct(">II")
_PRELUDE_LENGTH = 12  # the two lengths and the prelude's CRC
_MIN_LENGTH = _PRELUDE_LENGTH + 4
_MAX_LENGTH = 16 * 1024 * 1024
_MAX_HEADERS_LENGTH = 128 * 1024

HeaderValue = bool | int | bytes | str

# Header value types: fixed-size ones by their width, the rest (bytes, string) length-prefixed.
_FIXED = {2: (1, ">b"), 3: (2, ">h"), 4: (4, ">i"), 5: (8, ">q"), 8: (8, ">q")}
_UUID = 9


@dataclass(frozen=True, slots=True)
class EventMessage:
    headers: dict[str, HeaderValue]
    payload: bytes
    frame: bytes = b""
    """The whole frame as it arrived, for a stream relayed to a client of the same dialect."""

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value if isinstance(value, str) else None


class EventStreamDecoder:
    def __init__(self, deployment: str) -> None:
        self._deployment = deployment
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[EventMessage]:
        """The messages completed by ``data`` (possibly none), one by one: those before a
        corrupt frame still count, and the corrupt one raises."""
        self._buffer += data
        while len(self._buffer) >= _PRELUDE_LENGTH:
            total, headers_length = _PRELUDE.unpack_from(self._buffer)
            (prelude_crc,) = struct.unpack_from(">I", self._buffer, 8)
            if zlib.crc32(self._buffer[:8]) != prelude_crc:
                raise self._error("prelude checksum mismatch")
            if not _MIN_LENGTH <= total <= _MAX_LENGTH or headers_length > min(
                    _MAX_HEADERS_LENGTH, total - _MIN_LENGTH):
                raise self._error(f"impossible frame lengths ({total}, {headers_length})")
            if len(self._buffer) < total:
                break
            frame = bytes(self._buffer[:total])
            del self._buffer[:total]
            (message_crc,) = struct.unpack_from(">I", frame, total - 4)
            if zlib.crc32(frame[:-4]) != message_crc:
                raise self._error("message checksum mismatch")
            end = _PRELUDE_LENGTH + headers_length
            headers = self._headers(frame[_PRELUDE_LENGTH:end])
            yield EventMessage(headers, frame[end:-4], frame)

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished frame are buffered (a stream must not end here)."""
        return bool(self._buffer)

    def _headers(self, data: bytes) -> dict[str, HeaderValue]:
        headers: dict[str, HeaderValue] = {}
        at = 0
        try:
            while at < len(data):
                name_length = data[at]
                name = data[at + 1:at + 1 + name_length].decode()
                at += 1 + name_length
                kind = data[at]
                at += 1
                value: HeaderValue
                if kind in (0, 1):
                    value = kind == 0
                elif kind in _FIXED:
                    width, fmt = _FIXED[kind]
                    (value,) = struct.unpack_from(fmt, data, at)
                    at += width
                elif kind in (6, 7):
                    (length,) = struct.unpack_from(">H", data, at)
                    raw = data[at + 2:at + 2 + length]
                    if len(raw) != length:
                        raise ValueError("a header value runs past the headers")
                    value = raw.decode() if kind == 7 else raw
                    at += 2 + length
                elif kind == _UUID:
                    value = data[at:at + 16]
                    at += 16
                else:
                    raise ValueError(f"unknown header value type {kind}")
                headers[name] = value
        except (IndexError, ValueError, struct.error, UnicodeDecodeError) as exc:
            raise self._error(f"unreadable headers: {exc}") from None
        return headers

    def _error(self, problem: str) -> UpstreamProtocolError:
        return UpstreamProtocolError(f"corrupt event stream from the upstream: {problem}",
                                     deployment=self._deployment)


async def messages(body: AsyncIterable[bytes], deployment: str
                   ) -> AsyncIterator[Iterator[EventMessage]]:
    """The framing :func:`~polyroute.adapters.stream_driver.drive` reads: per network read,
    the messages it completed (lazily, so those before a corrupt frame still count). A body
    that ends inside a frame did not finish its answer."""
    decoder = EventStreamDecoder(deployment)
    async for data in body:
        yield decoder.feed(data)
    if decoder.pending:
        raise ended_early(deployment)
