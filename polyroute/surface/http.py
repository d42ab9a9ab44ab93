"""The HTTP server: the routes table, body limits, and errors in each dialect's own shape."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Protocol

from aiohttp import web

from polyroute.engine.gateway import TimeoutOverrides
from polyroute.engine.tags import parse_tags
from polyroute.errors import AuthenticationFailed, GatewayError, InvalidRequest, PayloadTooLarge
from polyroute.model.record import RequestRecord

log = logging.getLogger("polyroute.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RECORD_KEY = "polyroute_record"
"""Where a handler leaves its RequestRecord, so an error response can still carry the trace
headers (the attempt chain) of what was tried."""


class ErrorEncoder(Protocol):
    def __call__(self, exc: GatewayError) -> bytes: ...


def guarded(handler: Handler, encode_error: ErrorEncoder) -> Handler:
    """Turn every failure of ``handler`` into an error response in the dialect's shape."""

    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except GatewayError as exc:
            return error_response(exc, encode_error, request)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("unexpected error serving %s", request.path)
            internal = GatewayError("The gateway failed to handle this request.")
            return error_response(internal, encode_error, request)

    return run


def error_response(
    exc: GatewayError, encode_error: ErrorEncoder, request: web.Request
) -> web.Response:
    record = request.get(RECORD_KEY)
    if record is not None:
        headers = trace_headers(record)
    else:
        headers = {"x-request-id": request_id(request)}
        client_id = client_request_id(request)
        if client_id is not None:
            headers["x-client-request-id"] = client_id
    retry_after = exc.retry_after
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    return web.Response(status=exc.status, body=encode_error(exc),
                        content_type="application/json", headers=headers)


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The whole body, within ``limit`` bytes and ``timeout_s`` seconds: a slow client cannot
    hold a handler forever."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"The request body is {length} bytes; the limit is {limit}.")
    try:
        if request.content.is_eof():
            body = await request.read()  # already all here: skip the timer
        else:
            async with asyncio.timeout(timeout_s):
                body = await request.read()  # bounded by the app's client_max_size
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"The request body exceeds the limit of {limit} bytes.") from None
    except TimeoutError:
        raise InvalidRequest(f"The request body did not arrive within {timeout_s:g} s.",
                             status=408, code="request_timeout") from None
    if len(body) > limit:
        raise PayloadTooLarge(f"The request body exceeds the limit of {limit} bytes.")
    return body


class RequestIds:
    """Unique, unguessable ids that sort by time, without a syscall per request.

    The id names a request in the ledger and the admin API, so nobody may pick it (a client's
    ``x-request-id`` is kept apart, see :func:`client_request_id`) nor predict another from
    one seen: the last 80 bits are BLAKE2b of a counter keyed with 32 random bytes per process,
    a pseudorandom function, so ids are unique within a process and unguessable across.

    The first 48 bits are the time in milliseconds, as in UUIDv7 and ULID, so the ledger's
    index on ``request_id`` grows at its end. With wholly random ids each insert touched a
    random page of that index, which cost the SQLite flusher twice the CPU per record once
    the index outgrew the page cache (issue 12: the ledger fell half behind at saturation)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._reseed()
        # A process forked after import must not repeat its parent's ids.
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._key = secrets.token_bytes(32)
        self._next = itertools.count(1).__next__

    def new(self) -> str:
        counter = self._next().to_bytes(8, "little")
        unguessable = hashlib.blake2b(counter, key=self._key, digest_size=10).hexdigest()
        return f"{int(self._clock() * 1000) & 0xFFFF_FFFF_FFFF:012x}{unguessable}"


_IDS = RequestIds()


def credentials(request: web.Request) -> str | None:
    """The client's key: ``Authorization: Bearer <key>`` (OpenAI's SDKs), ``x-api-key``
    (Anthropic's) or ``x-goog-api-key`` (Google's), or, on Gemini's ``/v1beta/`` paths only,
    Google's ``?key=`` query parameter. A header that is not UTF-8 is no key at all: 401,
    before anything compares it (aiohttp hands such bytes over as lone surrogates, which
    cannot be encoded again)."""
    auth = request.headers.get("Authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return _readable(token.strip())
    key = request.headers.get("x-api-key") or request.headers.get("x-goog-api-key")
    if not key and request.path.startswith(GEMINI_PREFIX):
        key = request.query.get("key")
    return _readable(key) if key else None


GEMINI_PREFIX = "/v1beta/"


def _readable(key: str) -> str:
    try:
        key.encode()
    except UnicodeEncodeError:
        raise AuthenticationFailed("Invalid API key: it is not UTF-8 text.") from None
    return key


def request_id(request: web.Request) -> str:
    """The gateway's own id of this request: always generated, never the client's."""
    rid = request.get("polyroute_request_id")
    if rid is None:
        rid = request["polyroute_request_id"] = _IDS.new()
    return str(rid)


MAX_CLIENT_REQUEST_ID = 128
_CLIENT_ID_CHARS = re.compile(r"[\x21-\x7e]+")
"""Printable ASCII without spaces: what every tracing id is, and safe in any log or column."""


def client_request_id(request: web.Request) -> str | None:
    """The id the client gave its request (``x-client-request-id`` as OpenAI's SDKs send it,
    else ``x-request-id``), for correlating with the client's own logs. Recorded beside the
    gateway's id and echoed back; an id longer than 128 characters or with other than
    printable ASCII is ignored (it is a correlation hint, not worth refusing a request)."""
    given = request.headers.get("x-client-request-id") or request.headers.get("x-request-id")
    if (given is None or len(given) > MAX_CLIENT_REQUEST_ID
            or not _CLIENT_ID_CHARS.fullmatch(given)):
        return None
    return given


TIMEOUT_HEADERS = {
    "x-polyroute-timeout": "total_s",
    "x-polyroute-ttft-timeout": "ttft_s",
    "x-polyroute-stall-timeout": "stall_s",
}
_NO_OVERRIDES = TimeoutOverrides()
TAGS_HEADER = "x-polyroute-tags"


def timeout_overrides(request: web.Request) -> TimeoutOverrides:
    """Per-request deadlines from headers, in seconds (e.g. ``x-polyroute-ttft-timeout: 5``),
    and the deployment tags asked for (``x-polyroute-tags: eu,batch``)."""
    headers = request.headers
    tags = headers.get(TAGS_HEADER)
    if tags is not None:
        return replace(_deadlines(headers), tags=parse_tags(tags, TAGS_HEADER))
    return _deadlines(headers)


def _deadlines(headers: Mapping[str, str]) -> TimeoutOverrides:
    if not any(name in headers for name in TIMEOUT_HEADERS):
        return _NO_OVERRIDES
    values: dict[str, float] = {}
    for name, field in TIMEOUT_HEADERS.items():
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0 < value <= 3600:
            raise InvalidRequest(f"Header {name} must be a number of seconds in (0, 3600], "
                                 f"not {raw!r}.", param=name)
        values[field] = value
    return TimeoutOverrides(values.get("total_s"), values.get("ttft_s"), values.get("stall_s"))


def trace_headers(record: RequestRecord) -> dict[str, str]:
    headers = {
        "x-request-id": record.request_id,
        "x-polyroute-attempts": ",".join(
            f"{a.deployment}:{a.error_class or 'ok'}" for a in record.attempts),
    }
    if record.client_request_id is not None:
        headers["x-client-request-id"] = record.client_request_id
    if record.deployment is not None and record.error_class is None:
        headers["x-polyroute-deployment"] = record.deployment
    if record.route is not None:
        headers["x-polyroute-route"] = record.route
    if record.cache is not None:
        headers["x-polyroute-cache"] = "hit" if record.cache == "semantic" else record.cache
        if record.cache_similarity is not None:
            headers["x-polyroute-cache-similarity"] = f"{record.cache_similarity:.4f}"
        if record.cache_age_s is not None:
            headers["Age"] = str(record.cache_age_s)
    return headers
