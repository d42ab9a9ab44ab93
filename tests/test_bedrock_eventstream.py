"""The gateway's eventstream reader, frame by frame: every checksum is verified, frames split
anywhere across network reads come out whole, and every header value type is read."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest

from polyroute.adapters.bedrock_converse.eventstream import EventStreamDecoder
from polyroute.errors import UpstreamProtocolError
from polyroute.sim.bedrock.eventstream import event, exception, frame


def _decode_in_pieces(data: bytes, size: int) -> list[tuple[dict[str, object], bytes]]:
    decoder = EventStreamDecoder("d")
    out = []
    for start in range(0, len(data), size):
        out += [(m.headers, m.payload) for m in decoder.feed(data[start:start + size])]
    assert not decoder.pending
    return out


def test_frames_split_anywhere_come_out_whole() -> None:
    stream = (event("messageStart", {"role": "assistant"})
              + event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "héllo"}})
              + exception("throttlingException", "slow down"))
    whole = _decode_in_pieces(stream, len(stream))
    assert [h[":event-type" if ":event-type" in h else ":exception-type"] for h, _ in whole] \
        == ["messageStart", "contentBlockDelta", "throttlingException"]
    assert whole[1][1] == '{"contentBlockIndex":0,"delta":{"text":"héllo"}}'.encode()
    for size in (1, 2, 3, 7, 13):
        assert _decode_in_pieces(stream, size) == whole


def test_a_bad_message_checksum_raises_after_the_good_frames() -> None:
    good = event("messageStart", {"role": "assistant"})
    bad = event("contentBlockDelta", {"delta": {"text": "x"}}, corrupt=True)
    decoder = EventStreamDecoder("dep")
    messages = decoder.feed(good + bad)
    assert next(messages).header(":event-type") == "messageStart"
    with pytest.raises(UpstreamProtocolError, match="message checksum mismatch") as info:
        next(messages)
    assert info.value.deployment == "dep" and info.value.trigger == "protocol"


def test_a_bad_prelude_checksum_or_length_raises() -> None:
    data = bytearray(event("messageStart", {"role": "assistant"}))
    data[9] ^= 0xFF
    with pytest.raises(UpstreamProtocolError, match="prelude checksum mismatch"):
        list(EventStreamDecoder("d").feed(bytes(data)))
    prelude = struct.pack(">II", 5, 0)
    tiny = prelude + struct.pack(">I", zlib.crc32(prelude))
    with pytest.raises(UpstreamProtocolError, match="impossible frame lengths"):
        list(EventStreamDecoder("d").feed(tiny))


def test_every_header_value_type() -> None:
    ident = uuid.uuid4().bytes
    headers = (b"\x01t\x00" + b"\x01f\x01" + b"\x01b\x02\xff" + b"\x01s\x03" + struct.pack(">h", -2)
               + b"\x01i\x04" + struct.pack(">i", 70000) + b"\x01l\x05" + struct.pack(">q", 2**40)
               + b"\x01y\x06" + struct.pack(">H", 2) + b"\x00\x01"
               + b"\x01w\x07" + struct.pack(">H", 2) + b"ok"
               + b"\x01d\x08" + struct.pack(">q", 1_700_000_000_000) + b"\x01u\x09" + ident)
    total = 12 + len(headers) + 4
    prelude = struct.pack(">II", total, len(headers))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers
    data = body + struct.pack(">I", zlib.crc32(body))
    (message,) = list(EventStreamDecoder("d").feed(data))
    assert message.headers == {"t": True, "f": False, "b": -1, "s": -2, "i": 70000, "l": 2**40,
                               "y": b"\x00\x01", "w": "ok", "d": 1_700_000_000_000, "u": ident}
    assert message.payload == b""


def test_a_stream_cut_inside_a_frame_is_pending() -> None:
    data = frame({":message-type": "event", ":event-type": "messageStop"}, b"{}")
    decoder = EventStreamDecoder("d")
    assert list(decoder.feed(data[:-3])) == [] and decoder.pending
