"""The stream a Converse client gets: a Bedrock upstream's eventstream frames relayed as they
came (``ChatChunk.native``), or any other upstream's chunks encoded.

As for the Responses dialect (:mod:`polyroute.surface.responses.relay`): the first batch
decides; a relayed stream that another attempt had to finish goes on with that attempt's
answer in a new content block and ends with polyroute's own messageStop and metadata."""

from __future__ import annotations

import struct

import msgspec

from polyroute.model.chat import ChatChunk
from polyroute.surface.bedrock.encode import StreamEncoder
from polyroute.surface.native_relay import NativeRelay


class _Index(msgspec.Struct, rename="camel"):
    content_block_index: int = -1


_index_decoder = msgspec.json.Decoder(_Index)


def _block_index(frame: bytes) -> int:
    """The content block a frame is about (-1: none): its JSON payload sits between the
    headers and the trailing checksum."""
    if len(frame) < 16:
        return -1
    (headers_length,) = struct.unpack_from(">I", frame, 4)
    try:
        return _index_decoder.decode(frame[12 + headers_length:-4]).content_block_index
    except msgspec.DecodeError:
        return -1


def _has_content(chunk: ChatChunk) -> bool:
    return any(c.delta.content or c.delta.tool_calls or c.delta.reasoning_content
               for c in chunk.choices)


class StreamRelay(NativeRelay[StreamEncoder]):
    def __init__(self) -> None:
        super().__init__(StreamEncoder())
        self._stopped = False  # the upstream's messageStop was relayed

    def _relay(self, batch: list[ChatChunk]) -> bytes:
        out: list[bytes] = []
        for chunk in batch:
            if chunk.native is not None:
                out.append(chunk.native)
                self._last = chunk.native
                if chunk.usage is not None:
                    self._ended = True  # the metadata event, the last of a stream
                self._stopped = self._stopped or chunk.finished
            elif self._stopped and not self._taken_over and chunk.usage is not None:
                # The upstream ended after messageStop without its metadata: only that is
                # missing (the adapter's usage chunk stands for it).
                self._ended = True
                out.append(self._encoder.metadata(chunk.usage))
            elif _has_content(chunk) or chunk.usage is not None:
                self._take_over()
                out.append(self._encoder.feed([chunk]))
        return b"".join(out)

    def _take_over(self) -> None:
        if not self._taken_over and self._relaying:
            self._taken_over = True
            self._encoder.take_over(_block_index(self._last) + 1)
