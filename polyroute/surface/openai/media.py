"""OpenAI's media endpoints: images, audio, moderation, and Jina/Cohere-style rerank.
Decode, call the engine, relay the upstream's answer (its bytes and content type)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from polyroute.config.compiled import ServerSettings
from polyroute.engine.media import MediaRelay
from polyroute.errors import GatewayError, InvalidRequest
from polyroute.model.media import Form, MediaRequest, MediaText, Units
from polyroute.policy.types import Principal
from polyroute.surface.exchange import ChatExchange
from polyroute.surface.http import Handler, timeout_overrides, trace_headers
from polyroute.surface.openai import media_decode, uploads
from polyroute.surface.openai.encode import error_body

log = logging.getLogger("polyroute.http")

AUDIO_RESERVE_BYTES_PER_S = 2_000
"""An upload's most seconds, reserved before it is transcribed: 16 kbit/s, below any codec
vendors accept for speech, so the reservation covers the answer's duration."""
AUDIO_BILL_BYTES_PER_S = 16_000
"""Its seconds when the answer says nothing (a plain-text transcript) and the upload's own
headers do not tell its duration (a format tinytag does not read): 128 kbit/s, a common MP3
rate, and the ledger marks the request's usage estimated."""


class MediaHandlers:
    def __init__(self, exchange: ChatExchange, server: ServerSettings) -> None:
        self._x = exchange
        self._upload_limit = server.max_upload_bytes
        self._idle_s = server.body_timeout_s

    async def image_generations(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        return await self._whole(http, principal,
                                 media_decode.image_generation(await self._x.body(http)))

    async def moderations(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        return await self._whole(http, principal,
                                 media_decode.moderation(await self._x.body(http)))

    async def rerank(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        return await self._whole(http, principal, media_decode.rerank(await self._x.body(http)))

    async def image_edits(self, http: web.Request) -> web.StreamResponse:
        return await self._upload(http, "images.edits")

    async def transcriptions(self, http: web.Request) -> web.StreamResponse:
        return await self._upload(http, "audio.transcriptions")

    async def translations(self, http: web.Request) -> web.StreamResponse:
        return await self._upload(http, "audio.translations")

    async def speech(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        return await self._relayed(http, principal,
                                   media_decode.speech(await self._x.body(http)))

    async def _relayed(self, http: web.Request, principal: Principal,
                       request: MediaRequest) -> web.StreamResponse:
        record = self._x.record(http, request.endpoint, request.model, stream=True)
        relay = await self._x.gateway.open_media(request, record, timeout_overrides(http),
                                                 principal)
        return await _relay(http, relay, trace_headers(record))

    async def _upload(self, http: web.Request, endpoint: str) -> web.StreamResponse:
        principal = await self._x.principal(http)  # before the upload is read: no key, no disk
        model, form = await uploads.read_form(http, self._upload_limit, self._idle_s)
        try:
            # off the event loop: an audio upload's headers are read from disk
            request = await asyncio.to_thread(_form_request, endpoint, model, form)
            if endpoint == "audio.transcriptions" and form.field("stream") == "true":
                return await self._relayed(http, principal, request)
            return await self._whole(http, principal, request)
        finally:
            uploads.discard(form.files)

    async def _whole(self, http: web.Request, principal: Principal,
                     request: MediaRequest) -> web.StreamResponse:
        record = self._x.record(http, request.endpoint, request.model)
        response = await self._x.gateway.media(request, record, timeout_overrides(http),
                                               principal)
        headers = trace_headers(record)
        headers["Content-Type"] = response.content_type
        return web.Response(body=response.body, headers=headers)


def media_routes(media: MediaHandlers) -> list[tuple[str, str, Handler]]:
    """(method, path under /v1, handler) of every media endpoint."""
    return [
        ("POST", "/images/generations", media.image_generations),
        ("POST", "/images/edits", media.image_edits),
        ("POST", "/audio/transcriptions", media.transcriptions),
        ("POST", "/audio/translations", media.translations),
        ("POST", "/audio/speech", media.speech),
        ("POST", "/moderations", media.moderations),
        ("POST", "/rerank", media.rerank),
    ]


def _form_request(endpoint: str, model: str | None, form: Form) -> MediaRequest:
    request = _form_units(endpoint, model, form)
    # What governance reads: the prompt, and each file's name (both reach the vendor); the
    # files' content it cannot.
    request.texts = tuple(
        [MediaText(("field", i), value) for i, (name, value) in enumerate(form.fields)
         if name == "prompt" and value]
        + [MediaText(("filename", i), f.filename) for i, f in enumerate(form.files)
           if f.filename])
    if form.files:
        names = ", ".join(repr(f.filename or f.name) for f in form.files)
        request.unread = f"the uploaded file{'s' if len(form.files) > 1 else ''} {names}"
    return request


def _form_units(endpoint: str, model: str | None, form: Form) -> MediaRequest:
    text = " ".join(value for name, value in form.fields if name == "prompt")
    tokens = len(text) // 4 + 1
    if endpoint == "images.edits":
        if not any(f.name in ("image", "image[]") for f in form.files):
            raise InvalidRequest("Missing required parameter: 'image'.", param="image")
        n = _count(form.field("n"), "n")
        unit = media_decode.image_unit(form.field("size"), form.field("quality"))
        return MediaRequest(endpoint, model or media_decode.DEFAULT_IMAGE_MODEL, form=form,
                            estimate=Units(unit, n), input_tokens=tokens)
    audio = next((f for f in form.files if f.name == "file"), None)
    if audio is None:
        raise InvalidRequest("Missing required parameter: 'file'.", param="file")
    if not model:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    exact = uploads.audio_seconds(audio)
    most = exact if exact is not None else audio.size / AUDIO_RESERVE_BYTES_PER_S
    likely = exact if exact is not None else audio.size / AUDIO_BILL_BYTES_PER_S
    return MediaRequest(endpoint, model, form=form, estimate=Units("second", most),
                        fallback=Units("second", likely), fallback_estimated=exact is None,
                        input_tokens=tokens)


def _count(value: str | None, name: str) -> int:
    if value is None or value == "":
        return 1
    if not value.isdigit() or not 1 <= int(value) <= 10:
        raise InvalidRequest(f"Invalid '{name}': an integer from 1 to 10.", param=name)
    return int(value)


async def _relay(http: web.Request, relay: MediaRelay,
                 headers: dict[str, str]) -> web.StreamResponse:
    """The answer's bytes as they arrive. Binary audio has no way to say it broke off: a cut
    upstream ends the response without its last chunk, which the client reads as an error.
    SSE (a streamed transcript) can: it ends with an error event, on which OpenAI's SDKs
    raise."""
    headers["Content-Type"] = relay.content_type
    out = web.StreamResponse(headers=headers)
    try:
        await out.prepare(http)
        async for piece in relay.pieces():
            await out.write(piece)
    except GatewayError as exc:
        log.warning("media stream %s broke off: %s", headers.get("x-request-id"), exc.message)
        if relay.content_type.startswith("text/event-stream"):
            await out.write(b"data: " + error_body(exc) + b"\n\n")
            await out.write_eof()
        elif http.transport is not None:
            http.transport.close()
        return out
    finally:
        await relay.aclose()
    await out.write_eof()
    return out
