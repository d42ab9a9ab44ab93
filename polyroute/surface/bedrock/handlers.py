"""Converse handlers: authenticate, decode, call the engine, encode. Nothing else belongs here.

A key arrives the way boto3 can send it (docs/security.md): as the access key id of a SigV4
``Authorization`` header (the whole virtual key: ``aws_access_key_id="sk-pr-…"``; the
signature is not checked, polyroute holds no secret to check it with), as a Bedrock API key
(``Authorization: Bearer``, boto3's ``AWS_BEARER_TOKEN_BEDROCK``) or as ``x-api-key``."""

from __future__ import annotations

import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from polyroute.errors import AuthenticationFailed, GatewayError
from polyroute.model.record import RequestRecord
from polyroute.surface.bedrock import decode, encode
from polyroute.surface.bedrock.relay import StreamRelay
from polyroute.surface.exchange import ChatExchange
from polyroute.surface.http import ErrorEncoder, credentials, trace_headers

_SIGV4_KEY = re.compile(r"^AWS4-HMAC-SHA256\s+Credential=([^/,\s]+)/")


def encode_error(exc: GatewayError) -> bytes:
    return encode.error_body(exc)


def bedrock_credentials(http: web.Request) -> str | None:
    auth = http.headers.get("Authorization", "")
    match = _SIGV4_KEY.match(auth)
    if match is None:
        return credentials(http)
    key = match.group(1)
    try:
        key.encode()
    except UnicodeEncodeError:  # bytes that are not UTF-8 (as credentials() refuses them)
        raise AuthenticationFailed("Invalid API key: it is not UTF-8 text.") from None
    return key


def with_error_type(handler: Handler) -> Handler:
    """Name every error in ``x-amzn-ErrorType``, where boto3 reads which exception to raise
    (its body is only ``{"message": …}``)."""

    async def run(request: web.Request) -> web.StreamResponse:
        response = await handler(request)
        if response.status >= 400 and not response.prepared:
            response.headers["x-amzn-ErrorType"] = encode.error_type(response.status)
        return response

    return run


def _stream_headers(record: RequestRecord) -> dict[str, str]:
    return {**trace_headers(record), "Content-Type": encode.CONTENT_TYPE}


class BedrockHandlers:
    error_encoder: ErrorEncoder = staticmethod(encode_error)

    def __init__(self, exchange: ChatExchange) -> None:
        self._x = exchange

    async def converse(self, http: web.Request) -> web.StreamResponse:
        return await self._answer(http, stream=False)

    async def converse_stream(self, http: web.Request) -> web.StreamResponse:
        return await self._answer(http, stream=True)

    async def _answer(self, http: web.Request, *, stream: bool) -> web.StreamResponse:
        started = time.monotonic()
        principal = await self._x.authenticate(bedrock_credentials(http))
        request = decode.converse_request(await self._x.body(http),
                                          http.match_info["model_id"], stream)
        return await self._x.answer(
            http, request, principal, "bedrock",
            lambda response: encode.response_body(
                response, int((time.monotonic() - started) * 1000)),
            StreamRelay, headers=_stream_headers if stream else trace_headers,
            keepalive=False)  # an SSE comment would break the eventstream's framing
