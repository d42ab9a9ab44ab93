"""What the engine does for media endpoints besides the attempt loop it shares with chat:
which deployments serve an endpoint, what a request reserves, and an answer relayed as it
arrives (speech, a streamed transcript)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from polyroute.adapters.media_stream import MediaStream
from polyroute.adapters.registry import PROTOCOLS
from polyroute.adapters.spec import Unserved
from polyroute.engine.estimate import Reservation
from polyroute.engine.router import Route
from polyroute.engine.streaming import CLIENT_CLOSED
from polyroute.errors import InvalidRequest, UpstreamError, UpstreamTimeout
from polyroute.model.media import MEDIA_PATHS, MediaRequest
from polyroute.model.record import Attempt, RequestRecord
from polyroute.model.upstream import Deployment


def serving(route: Route, request: MediaRequest, record: RequestRecord) -> Route:
    """Only the candidates that can serve a media request: their protocol lists its
    endpoint, and its check of the deployment (the model's kind, the options the request
    asks) passes. Each one left out is shown in ``x-polyroute-attempts`` with why
    (``unsupported_endpoint``, ``unsupported_parameter``, ``unsupported_value``,
    ``file_too_large``), never tried, so the request goes to the group's next deployment.
    None left: a 400 naming why each deployment of the group cannot serve it."""
    verdicts = [(d, _why_not(d, request)) for d in route.candidates]
    serving = [d for d, why in verdicts if why is None]
    if len(serving) == len(route.candidates):
        return route
    skipped = [(d, why) for d, why in verdicts if why is not None]
    for dep, why in skipped:
        record.attempts.append(Attempt(dep.name, dep.vendor, 0.0, why.code, 400))
    if not serving:
        record.model_group = route.group
        raise _none_left(route.group, request.endpoint, [why for _, why in skipped],
                         "; ".join(f"'{d.name}': {why.why}" for d, why in skipped))
    return replace(route, candidates=serving)


def _why_not(dep: Deployment, request: MediaRequest) -> Unserved | None:
    protocol = dep.endpoint.protocol
    spec = PROTOCOLS[protocol]
    if request.endpoint not in spec.endpoints:
        return Unserved(f"protocol {protocol} has no such endpoint")
    return spec.serves(request, dep)


def _none_left(group: str, endpoint: str, reasons: list[Unserved], have: str) -> InvalidRequest:
    """The group's 400. Where a deployment refused an option (not the endpoint), the error
    names that option, which the client can change; else the model, which it routes by."""
    path = f"/v1{MEDIA_PATHS[endpoint]}"
    option = next((why for why in reasons if why.code != "unsupported_endpoint"), None)
    if option is None:
        return InvalidRequest(
            f"No deployment of model '{group}' serves {path} ({have}). Route '{group}' to a "
            "deployment that has it (docs/endpoints.md lists which do).",
            param="model", code="unsupported_endpoint")
    return InvalidRequest(
        f"No deployment of model '{group}' can serve this {path} request ({have}). Change "
        f"the request, or route '{group}' to a deployment that can (docs/endpoints.md says "
        "what each protocol carries).", param=option.param, code=option.code)


SPEECH_TOKENS_PER_CHARACTER = 3
"""The most audio tokens a character of speech may be billed as where speech is priced by
tokens (Gemini's TTS: 32 tokens a second, some 15 characters a second, so about 2)."""


def media_reservation(request: MediaRequest) -> Reservation:
    """Its text's tokens and its most units. Images and transcripts may be billed by output
    tokens (gpt-image-1, gpt-4o-transcribe, Gemini): the policy's default output is reserved
    for them; speech by audio tokens (Gemini's TTS) at most a few a character of its text;
    rerank and moderation write none."""
    writes = request.endpoint.startswith(("images.", "audio.transcriptions",
                                          "audio.translations"))
    output: int | None = None if writes else 0
    if request.endpoint == "audio.speech" and request.estimate is not None:
        output = int(request.estimate.quantity) * SPEECH_TOKENS_PER_CHARACTER
    return Reservation(request.input_tokens, output, units=request.estimate)


class MediaRelay:
    """A streamed media answer after its first byte: iterate it for the pieces. A stall or a
    cut ends it with the upstream's error raised and recorded; the request settles once, when
    it ends or is closed, billed by what the answer measured (``MediaStream.usage``/``units``)
    or else by the request's own measure."""

    def __init__(self, stream: MediaStream, first: bytes, stall_s: float, deadline: float,
                 settle: Callable[[], None], record: RequestRecord) -> None:
        self.content_type = stream.content_type
        self._stream = stream
        self._first = first
        self._stall_s = stall_s
        self._deadline = deadline
        self._settle = settle
        self._record = record
        self._settled = False
        self._finished = False

    async def pieces(self) -> AsyncIterator[bytes]:
        try:
            if self._first:
                yield self._first
            body = self._stream.pieces
            while True:
                try:
                    piece = await self._next(body)
                except UpstreamError as exc:
                    self._record.status, self._record.error_class = exc.status, exc.error_class
                    raise
                if not piece:
                    self._finished = True
                    self._measure()
                    return
                yield piece
        finally:
            await self.aclose()

    def _measure(self) -> None:
        """The answer's own measure, where it gave one (a streamed transcript's last event,
        a vendor's token count); else the request's stays (speech's characters)."""
        if self._stream.usage is not None:
            self._record.usage = self._stream.usage
        if self._stream.units is not None:
            self._record.units = self._stream.units

    async def _next(self, body: AsyncIterator[bytes]) -> bytes:
        """The next piece within the stall deadline and the request's; b"" at the end."""
        loop = asyncio.get_running_loop()
        limit = min(loop.time() + self._stall_s, self._deadline)
        try:
            async with asyncio.timeout_at(limit):
                return await anext(body, b"")
        except TimeoutError:
            raise UpstreamTimeout(f"the audio stalled for {self._stall_s:g} s"
                                  if limit < self._deadline
                                  else "the request's deadline passed") from None

    async def aclose(self) -> None:
        """Release the upstream and settle; before the end, the client went away."""
        if self._settled:
            return
        self._settled = True
        if not self._finished and self._record.error_class is None:
            self._record.status, self._record.error_class = CLIENT_CLOSED, "client_closed"
        try:
            await self._stream.aclose()
        finally:
            self._settle()
