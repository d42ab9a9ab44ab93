"""OpenAI's media endpoints (and Jina/Cohere-style rerank): bodies passed through with only the
model replaced, and what an answer is billed by read from it. Pure functions."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from polyroute.adapters.sse import sse_events
from polyroute.errors import UpstreamError, UpstreamProtocolError
from polyroute.model.media import MediaRequest, Units
from polyroute.model.usage import Usage

_any_decoder = msgspec.json.Decoder()


def json_body(request: MediaRequest, model: str) -> bytes:
    """The client's JSON body with the deployment's ``model``; every other field as sent."""
    fields = dict(request.fields or {})
    fields["model"] = msgspec.Raw(msgspec.json.encode(model))
    return msgspec.json.encode(fields)


def measured(request: MediaRequest, body: bytes,
             content_type: str) -> tuple[Usage | None, Units | None]:
    """The tokens and units an answer reports: images by how many came back, audio by the
    seconds it says it lasted, rerank by its billed searches; None where it says nothing
    (the caller falls back to the request's own measure)."""
    if "json" not in content_type:
        # A transcript as subtitles says how long the audio ran: its last cue's end. As plain
        # text it says nothing (the caller measures the upload).
        seconds = _last_cue_end(body) if request.endpoint.startswith("audio.") else None
        return None, None if seconds is None else Units("second", seconds)
    try:
        answer = _any_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None, None
    if not isinstance(answer, dict):
        return None, None
    usage = _tokens(answer.get("usage"))
    endpoint = request.endpoint
    units = None
    if endpoint.startswith("images.") and isinstance(answer.get("data"), list):
        unit = request.estimate.unit if request.estimate is not None else "image"
        units = Units(unit, len(answer["data"]))
    elif endpoint.startswith("audio."):
        seconds = _seconds(answer)
        if seconds is not None:
            units = Units("second", seconds)
    elif endpoint == "rerank":
        searches = _number(_dig(answer, "meta", "billed_units", "search_units"))  # Cohere
        if searches is not None:  # else the request's count: a search per 100 documents
            units = Units("search", searches)
    return usage, units


def streams_transcript(request: MediaRequest) -> bool:
    """A transcription asked for as SSE events (``stream: true``, gpt-4o-transcribe)."""
    return request.endpoint == "audio.transcriptions" and request.form is not None \
        and request.form.field("stream") == "true"


class TranscriptMeter:
    """A streamed transcript read as it is relayed (``adapters/media_stream.py``'s
    :class:`~polyroute.adapters.media_stream.Meter`): its events pass whole, as they arrive,
    and ``transcript.text.done`` says the usage. A stream that ends before that event, or an
    error event, is raised: the client must never take a cut transcript for a whole one. A
    model that does not stream (whisper-1 ignores ``stream``) answers one JSON body, read
    whole and measured like any other."""

    def __init__(self, request: MediaRequest, deployment: str) -> None:
        self._request = request
        self._deployment = deployment
        self.usage: Usage | None = None
        self.units: Units | None = None

    def relay(self, content_type: str, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        if content_type.startswith("text/event-stream"):
            return self._events(body)
        return self._whole(content_type, body)

    async def _whole(self, content_type: str, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        whole = bytearray()
        async for piece in body:
            whole += piece
        self.usage, self.units = measured(self._request, bytes(whole), content_type)
        yield bytes(whole)

    async def _events(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        done = False
        async for batch in sse_events(body):
            passed: list[bytes] = []
            for raw, data in batch:
                event = _event(data)
                if event.get("error") is not None or event.get("type") == "error":
                    if passed:
                        yield b"".join(passed)
                    raise _error_event(event, self._deployment)
                passed.append(raw)
                if event.get("type") == "transcript.text.done":
                    done = True
                    self.usage = _tokens(event.get("usage"))
                    seconds = _seconds(event)
                    self.units = None if seconds is None else Units("second", seconds)
            yield b"".join(passed)
            if done:
                return  # nothing after the last event is read
        raise UpstreamProtocolError("the transcript stream ended before transcript.text.done",
                                    deployment=self._deployment)


def _event(data: bytes) -> dict[str, Any]:
    try:
        event = _any_decoder.decode(data) if data.strip() else {}
    except (msgspec.DecodeError, RecursionError):
        event = None
    return event if isinstance(event, dict) else {}


def _error_event(event: dict[str, Any], deployment: str) -> UpstreamError:
    error = event.get("error")
    detail = error if isinstance(error, dict) else event
    message = detail.get("message") if isinstance(detail.get("message"), str) else None
    code = detail.get("code") if isinstance(detail.get("code"), str) else None
    # The vendor's own failure, not the request's: before the first event, the next
    # deployment is tried.
    return UpstreamError(f"the transcript stream reported an error: {message or 'unknown'}",
                         code=code, deployment=deployment)


def _tokens(usage: Any) -> Usage | None:
    """OpenAI's images and transcription ``usage`` (input/output tokens), or Jina's and
    vLLM's rerank ``usage`` (total tokens, all of them input)."""
    if not isinstance(usage, dict) or usage.get("type") == "duration":
        return None
    prompt = _number(usage.get("input_tokens", usage.get("prompt_tokens")))
    output = _number(usage.get("output_tokens", 0))
    if prompt is None:
        prompt, output = _number(usage.get("total_tokens")), 0
    if prompt is None or output is None:
        return None
    return Usage(prompt_tokens=int(prompt), completion_tokens=int(output),
                 total_tokens=int(prompt) + int(output))


def _seconds(answer: dict[str, Any]) -> float | None:
    """A verbose transcript's ``duration``, or ``usage: {"type": "duration", "seconds"}``."""
    usage = answer.get("usage")
    if isinstance(usage, dict) and usage.get("type") == "duration":
        seconds = _number(usage.get("seconds"))
        if seconds is not None:
            return seconds
    return _number(answer.get("duration"))


_CUE_END = re.compile(rb"--> *(\d+):(\d{2}):(\d{2})[,.](\d{3})")


def _last_cue_end(body: bytes) -> float | None:
    """The end time of an srt or vtt transcript's last cue, in seconds."""
    ends = _CUE_END.findall(body)
    if not ends:
        return None
    hours, minutes, seconds, millis = (int(x) for x in ends[-1])
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _number(value: Any) -> float | None:
    """A JSON number that may count something (not negative, not a boolean); else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None
