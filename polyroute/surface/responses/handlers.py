"""Responses-API handlers: decode, call the engine, encode. Nothing else belongs here."""

from __future__ import annotations

import time

from aiohttp import web

from polyroute.config.compiled import ServerSettings
from polyroute.engine.gateway import Gateway
from polyroute.errors import GatewayError
from polyroute.model.record import RequestRecord
from polyroute.policy.types import Policy
from polyroute.surface.http import (
    RECORD_KEY,
    ErrorEncoder,
    credentials,
    read_body,
    request_id,
    timeout_overrides,
    trace_headers,
)
from polyroute.surface.responses import decode, encode

_SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def encode_error(exc: GatewayError) -> bytes:
    return encode.error_body(exc)


class ResponsesHandlers:
    error_encoder: ErrorEncoder = staticmethod(encode_error)

    def __init__(self, gateway: Gateway, server: ServerSettings, policy: Policy) -> None:
        self._gateway = gateway
        self._policy = policy
        self._max_body = server.max_body_bytes
        self._body_timeout = server.body_timeout_s

    async def create(self, http: web.Request) -> web.StreamResponse:
        principal = await self._policy.authenticate(credentials(http))
        body = await read_body(http, self._max_body, self._body_timeout)
        request = decode.responses_request(body)
        record = RequestRecord(request_id(http), time.time(), "responses", request.model,
                               stream=request.stream)
        http[RECORD_KEY] = record
        if not request.stream:
            response = await self._gateway.chat(request, record, timeout_overrides(http),
                                                principal)
            return web.Response(body=encode.response_body(response),
                                content_type="application/json", headers=trace_headers(record))

        stream = await self._gateway.stream_chat(request, record, timeout_overrides(http),
                                                 principal)
        out = web.StreamResponse(headers={**_SSE_HEADERS, **trace_headers(record)})
        encoder = encode.StreamEncoder(request.model)
        try:
            await out.prepare(http)
            events = encoder.start()
            try:
                async for batch in stream:
                    events += encoder.feed(batch)
                    if events:
                        await out.write(events)
                        events = b""
            except GatewayError as exc:
                await out.write(events + encoder.fail(exc))
                return out
            await out.write_eof(events + encoder.finish())
        except ConnectionResetError:
            pass  # the client left; closing the stream below stops the upstream too
        finally:
            await stream.aclose()
        return out
