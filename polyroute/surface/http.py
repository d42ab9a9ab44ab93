"""The HTTP server: the routes table, body limits, and errors in each dialect's own shape."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from polyroute.engine.gateway import TimeoutOverrides
from polyroute.errors import GatewayError, InvalidRequest, PayloadTooLarge
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
    headers = trace_headers(record) if record is not None else {
        "x-request-id": request_id(request)}
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
    """Unique ids without a syscall per request: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = uuid.uuid4().hex[:12]
        self._next = itertools.count(1).__next__

    def new(self) -> str:
        return f"{self._prefix}{self._next():012x}"


_IDS = RequestIds()


_AT_PATH = re.compile(r" - at `\$\.?([^`]*)`$")


def invalid_request(message: str) -> InvalidRequest:
    """A msgspec validation message as a 400 whose ``param`` names the field."""
    match = _AT_PATH.search(message)
    param = match.group(1) if match else None
    problem = _AT_PATH.sub("", message)
    missing = re.match(r"Object missing required field `(.+)`", problem)
    if missing:
        field = f"{param}.{missing.group(1)}" if param else missing.group(1)
        return InvalidRequest(f"Missing required parameter: '{field}'.", param=field)
    where = f" at '{param}'" if param else ""
    return InvalidRequest(f"Invalid value{where}: {problem}.", param=param or None)


def credentials(request: web.Request) -> str | None:
    """The client's key: ``Authorization: Bearer <key>`` (OpenAI's SDKs) or ``x-api-key``
    (Anthropic's)."""
    auth = request.headers.get("Authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return request.headers.get("x-api-key") or None


def request_id(request: web.Request) -> str:
    rid = request.get("polyroute_request_id")
    if rid is None:
        incoming = request.headers.get("x-request-id")
        rid = incoming if incoming and len(incoming) <= 128 else _IDS.new()
        request["polyroute_request_id"] = rid
    return str(rid)


TIMEOUT_HEADERS = {
    "x-polyroute-timeout": "total_s",
    "x-polyroute-ttft-timeout": "ttft_s",
    "x-polyroute-stall-timeout": "stall_s",
}
_NO_OVERRIDES = TimeoutOverrides()


def timeout_overrides(request: web.Request) -> TimeoutOverrides:
    """Per-request deadlines from headers, in seconds (e.g. ``x-polyroute-ttft-timeout: 5``)."""
    headers = request.headers
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
    return TimeoutOverrides(**values)


def trace_headers(record: RequestRecord) -> dict[str, str]:
    headers = {
        "x-request-id": record.request_id,
        "x-polyroute-attempts": ",".join(
            f"{a.deployment}:{a.error_class or 'ok'}" for a in record.attempts),
    }
    if record.deployment is not None and record.error_class is None:
        headers["x-polyroute-deployment"] = record.deployment
    if record.route is not None:
        headers["x-polyroute-route"] = record.route
    return headers
