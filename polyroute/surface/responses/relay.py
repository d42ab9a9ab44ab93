"""The stream a Responses client gets: a Responses upstream's events relayed as they came
(``ChatChunk.native``), or the canonical chunks of any other upstream encoded.

Which one is decided by the first batch. A relayed stream that another attempt had to finish
(the engine resumes a broken stream by translating) goes on with that attempt's answer,
numbered after the last relayed event: in the message item the upstream left open when it
broke mid-text (closed with its whole text), else as a new output item; it ends with
polyroute's own ``response.completed``. A relayed stream that ends normally ends with the
upstream's."""

from __future__ import annotations

import msgspec

from polyroute.model.chat import ChatChunk
from polyroute.surface.native_relay import NativeRelay
from polyroute.surface.responses.encode import StreamEncoder


class _Numbers(msgspec.Struct):
    type: str = ""
    sequence_number: int = -1
    output_index: int = -1
    item_id: str | None = None
    content_index: int = 0


_numbers_decoder = msgspec.json.Decoder(_Numbers)


def _has_content(chunk: ChatChunk) -> bool:
    for choice in chunk.choices:
        delta = choice.delta
        if delta.content or delta.tool_calls or delta.refusal or delta.reasoning_content:
            return True
    return False


class StreamRelay(NativeRelay[StreamEncoder]):
    def __init__(self, model: str) -> None:
        super().__init__(StreamEncoder(model))
        self._text: list[str] = []  # the relayed text deltas

    def _relay(self, batch: list[ChatChunk]) -> bytes:
        out: list[bytes] = []
        for chunk in batch:
            if chunk.native is not None:
                out.append(chunk.native)
                self._last = chunk.native
                for choice in chunk.choices:
                    if choice.delta.content:
                        self._text.append(choice.delta.content)
                if chunk.usage is not None:
                    self._ended = True  # only the terminal event carries usage
            elif _has_content(chunk) or chunk.usage is not None:
                self._take_over()
                out.append(self._encoder.feed([chunk]))
        return b"".join(out)

    def _take_over(self) -> None:
        if self._taken_over or not self._relaying:
            return
        self._taken_over = True
        data = self._last.partition(b"data:")[2]
        try:
            numbers = _numbers_decoder.decode(data) if data else _Numbers()
        except msgspec.DecodeError:
            numbers = _Numbers()
        open_text = None
        if numbers.type == "response.output_text.delta" and numbers.item_id \
                and numbers.content_index == 0 and numbers.output_index >= 0:
            open_text = (numbers.item_id, "".join(self._text))
        self._encoder.take_over(numbers.sequence_number + 1, numbers.output_index, open_text)
