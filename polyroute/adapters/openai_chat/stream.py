"""OpenAI's stream events → canonical chunks: each ``data:`` is already one, decoded as it is
(its bytes kept for the surface to relay); ``[DONE]`` ends the stream; ``{"error": …}`` is
raised. Pure and stateful: one :class:`StreamTranslator` per stream."""

from __future__ import annotations

from polyroute.adapters.openai_chat import translate
from polyroute.model.chat import ChatChunk

_DONE = b"[DONE]"


class StreamTranslator:
    def __init__(self, deployment: str) -> None:
        self._deployment = deployment
        self.finished = False
        self.stopped = False
        """``[DONE]`` has arrived."""

    def feed(self, data: bytes) -> list[ChatChunk]:
        if data == _DONE:
            self.stopped = True
            return []
        if data.startswith(b'{"error"'):  # checked here first: this runs once per event
            error = translate.stream_error(data, self._deployment)
            if error is not None:
                raise error
        chunk = translate.parse_chunk(data, self._deployment)
        if not self.finished:
            for choice in chunk.choices:
                if choice.finish_reason:
                    self.finished = True
        return [chunk]

    def close(self) -> list[ChatChunk]:
        return []  # finished without [DONE]: the answer is whole, and its usage came along
