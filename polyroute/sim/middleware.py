"""Request bookkeeping, API-key check and OpenAI-shaped errors for the /v1 API."""

from __future__ import annotations

import asyncio
import base64
import hmac
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from polyroute.sim import errors
from polyroute.sim.body_writer import SENT
from polyroute.sim.connection import peer_gone
from polyroute.sim.state import get_state

API_PREFIX = "/v1/"
# Every protocol's API paths: OpenAI and Anthropic (/v1/), Gemini (/v1beta/), Bedrock
# (/model/) and Azure OpenAI (/openai/). Only these are recorded.
API_PREFIXES = (API_PREFIX, "/v1beta/", "/v1alpha/", "/model/", "/openai/", "/rerank")
_DECODER = msgspec.json.Decoder()
_MAX_RECORDED_TEXT = 4096


def _is_api(request: web.Request) -> bool:
    return request.path.startswith(API_PREFIXES)


def _body_as_json(body: bytes) -> Any:
    try:
        return _DECODER.decode(body) if body else None
    except msgspec.DecodeError:
        return None


def _headers(request: web.Request) -> dict[str, str]:
    # Lower-cased keys, repeated headers joined: what HTTP/2 and most proxies would show.
    result: dict[str, str] = {}
    for key, value in request.headers.items():
        name = key.lower()
        result[name] = f"{result[name]}, {value}" if name in result else value
    return result


@web.middleware
async def record_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _is_api(request):
        return await handler(request)
    state = get_state(request)
    stats = state.stats
    # An upload is read by its handler a piece at a time (sim/media.py), never held whole.
    upload = request.content_type.startswith("multipart/")
    body = await request.read() if request.body_exists and not upload else b""
    stats.requests_total += 1
    stats.requests_by_path[request.path] += 1
    decoded = _body_as_json(body)
    stats.last_request = {
        "method": request.method,
        "path": request.path,
        "query": request.query_string,
        "headers": _headers(request),
        "body": decoded,
        # Kept for bodies that are not JSON, so tests can still see what was sent.
        "body_text": None if decoded is not None else _recorded_text(body),
        # The exact bytes, for tests that a gateway forwarded a body unchanged.
        "body_base64": base64.b64encode(body).decode(),
    }
    stats.last_request_body = body
    stats.active_requests += 1
    sent = bytearray()
    SENT.set(sent)
    try:
        if state.settings.latency_ms > 0:
            # Network and queueing delay: it comes before any answer, errors included.
            await asyncio.sleep(state.settings.latency_ms / 1000)
        response = await handler(request)
    except asyncio.CancelledError:
        if peer_gone(request):
            stats.requests_aborted_by_peer += 1
        raise
    except ConnectionResetError:
        stats.requests_aborted_by_peer += 1
        # Never written: aiohttp sees the closed transport and drops it quietly.
        return web.Response()
    finally:
        stats.active_requests -= 1
    stats.status_codes[response.status] += 1
    stats.last_response_body = sent  # what the handler wrote, whole (decoded when asked)
    return response


def _recorded_text(body: bytes) -> str | None:
    if not body:
        return None
    return body[:_MAX_RECORDED_TEXT].decode("utf-8", errors="replace")


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.ApiError as exc:
        return exc.to_response()
    except web.HTTPNotFound:
        if not _is_api(request):
            raise
        return errors.not_found(request.method, request.path).to_response()
    except web.HTTPMethodNotAllowed:
        if not _is_api(request):
            raise
        return errors.not_found(request.method, request.path).to_response()


@web.middleware
async def check_api_key(request: web.Request, handler: Handler) -> web.StreamResponse:
    expected = get_state(request).settings.api_key
    if expected and _is_api(request):
        scheme, _, provided = request.headers.get("Authorization", "").partition(" ")
        provided = provided.strip()
        valid = scheme.lower() == "bearer" and hmac.compare_digest(
            provided.encode(), expected.encode()
        )
        if not valid:
            raise errors.invalid_api_key(provided or None)
    return await handler(request)
