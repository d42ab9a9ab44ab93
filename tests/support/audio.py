"""Small, valid compressed audio files written by hand (no encoder is installed): their
durations are known exactly by construction, so a reader of their headers can be checked.

- :func:`mp3`: MPEG-1 Layer III frames at 32 kbit/s, 48 kHz, mono: 96 bytes and 1152 samples
  (24 ms) each, silent (all-zero side information and main data).
- :func:`ogg_opus`: an Ogg stream of an ``OpusHead`` page, an ``OpusTags`` page and audio
  pages of 20 ms silent Opus packets (``TOC 0xF8``, a zero-length frame); its duration is the
  last page's granule position less the pre-skip, over 48 kHz (RFC 7845)."""

from __future__ import annotations

import struct

MP3_FRAME_S = 1152 / 48_000


def mp3(frames: int) -> bytes:
    # sync 0xFFF, MPEG-1 (11), Layer III (01), no CRC (1); bitrate index 1 (32 kbit/s),
    # 48 kHz (01), no padding; mono (11), no emphasis.
    header = bytes([0xFF, 0xFB, 0x14, 0xC0])
    frame = header + bytes(96 - len(header))
    return frame * frames


_PRE_SKIP = 312
_OPUS_FRAME = 960  # 20 ms at 48 kHz


def ogg_opus(seconds: float) -> bytes:
    packets = round(seconds * 48_000 / _OPUS_FRAME)
    serial = 0x5EED
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, _PRE_SKIP, 48_000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)
    pages = [_page(serial, 0, 0x02, 0, [head]), _page(serial, 1, 0x00, 0, [tags])]
    sequence, done = 2, 0
    while done < packets:
        batch = min(50, packets - done)
        done += batch
        last = done == packets
        pages.append(_page(serial, sequence, 0x04 if last else 0x00,
                           _PRE_SKIP + done * _OPUS_FRAME, [b"\xf8"] * batch))
        sequence += 1
    return b"".join(pages)


def _page(serial: int, sequence: int, flags: int, granule: int, packets: list[bytes]) -> bytes:
    lacing = b""
    for packet in packets:
        lacing += bytes([255] * (len(packet) // 255) + [len(packet) % 255])
    header = struct.pack("<4sBBqIII", b"OggS", 0, flags, granule, serial, sequence, 0) \
        + bytes([len(lacing)]) + lacing
    page = header + b"".join(packets)
    crc = _ogg_crc(page)
    return page[:22] + struct.pack("<I", crc) + page[26:]


def _ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, initial value 0."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc
