"""Writing ``application/vnd.amazon.eventstream`` frames (the simulator's side; the gateway
has its own reader, and tests read these with botocore's parser)."""

from __future__ import annotations

import struct
import zlib

import msgspec

_ENCODER = msgspec.json.Encoder()
_STRING = 7


def _headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += bytes([len(raw_name)]) + raw_name + bytes([_STRING])
        out += struct.pack(">H", len(raw_value)) + raw_value
    return bytes(out)


def frame(headers: dict[str, str], payload: bytes, *, corrupt: bool = False) -> bytes:
    """One message; ``corrupt`` spoils its message CRC (and only that)."""
    encoded = _headers(headers)
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    crc = zlib.crc32(body) ^ (0xFFFFFFFF if corrupt else 0)
    return body + struct.pack(">I", crc)


def event(kind: str, payload: dict[str, object], *, corrupt: bool = False) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json",
               ":message-type": "event"}
    return frame(headers, _ENCODER.encode(payload), corrupt=corrupt)


def exception(kind: str, message: str) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json",
               ":message-type": "exception"}
    return frame(headers, _ENCODER.encode({"message": message}))
