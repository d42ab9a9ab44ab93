"""Writing ``application/vnd.amazon.eventstream`` frames (the reader, with the layout, is
:mod:`polyroute.adapters.bedrock_converse.eventstream`). Headers are strings only, which is
all Converse's events and exceptions use."""

from __future__ import annotations

import struct
import zlib

_STRING = 7


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += bytes([len(raw_name)]) + raw_name + bytes([_STRING])
        encoded += struct.pack(">H", len(raw_value)) + raw_value
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(kind: str, payload: bytes) -> bytes:
    return frame({":event-type": kind, ":content-type": "application/json",
                  ":message-type": "event"}, payload)


def exception(kind: str, payload: bytes) -> bytes:
    return frame({":exception-type": kind, ":content-type": "application/json",
                  ":message-type": "exception"}, payload)
