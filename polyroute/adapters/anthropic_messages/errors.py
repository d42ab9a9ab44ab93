"""Anthropic's error bodies and statuses → the gateway's error tree, the vendor's message kept.

Anthropic names the kind of every error (``error.type``), in HTTP responses and in a stream's
``error`` event alike, so the type decides; the status only fills in when the body is not
Anthropic's (a proxy's HTML page, say).
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from polyroute.adapters.anthropic_messages.wire import ERROR_DECODER, ErrorDetail
from polyroute.errors import (
    ContextWindowExceeded,
    UpstreamAuthError,
    UpstreamError,
    UpstreamModelNotFound,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)

OVERLOADED_STATUS = 529

# What each error type means when a stream carries it (no HTTP status to go by).
_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": OVERLOADED_STATUS,
}

# Anthropic's wording for a prompt over the context window: "prompt is too long: 215000 tokens
# > 200000 maximum" (and, for some models, "input length and `max_tokens` exceed context
# limit: …").
_CONTEXT_MARKERS = ("prompt is too long", "exceed context limit", "context window")


def error_from_response(
    status: int, body: bytes, headers: Mapping[str, str], deployment: str
) -> UpstreamError:
    detail = _detail(body)
    if detail is None:
        text = body[:300].decode("utf-8", "replace").strip()
        detail = ErrorDetail(type="", message=text or f"upstream returned HTTP {status}")
    return error_from_detail(detail, status, headers, deployment)


def error_from_event(detail: ErrorDetail | None, deployment: str) -> UpstreamError:
    """An ``event: error`` inside a stream (typically ``overloaded_error``)."""
    detail = detail or ErrorDetail()
    status = _STATUS_OF_TYPE.get(detail.type, 500)
    return error_from_detail(detail, status, {}, deployment)


def error_from_detail(
    detail: ErrorDetail, status: int, headers: Mapping[str, str], deployment: str
) -> UpstreamError:
    kind, message = detail.type, detail.message or f"upstream returned HTTP {status}"
    if kind in _STATUS_OF_TYPE and status < 400:
        status = _STATUS_OF_TYPE[kind]
    if kind == "overloaded_error" or status == OVERLOADED_STATUS:
        return UpstreamUnavailable(message, status=OVERLOADED_STATUS, deployment=deployment,
                                   code="overloaded_error", retry_after=retry_after(headers))
    if kind == "rate_limit_error" or status == 429:
        return UpstreamRateLimited(message, retry_after=retry_after(headers),
                                   deployment=deployment)
    if kind in ("authentication_error", "permission_error", "billing_error") or status in (
        401, 402, 403
    ):
        return UpstreamAuthError(f"the upstream refused the gateway's credentials: {message}",
                                 deployment=deployment)
    if kind == "not_found_error" or status == 404:
        return UpstreamModelNotFound(f"the upstream does not know this model: {message}",
                                     deployment=deployment)
    if status == 400 and any(marker in message for marker in _CONTEXT_MARKERS):
        return ContextWindowExceeded(message, deployment=deployment, param="messages")
    if status == 408 or status >= 500 or kind in ("api_error", "timeout_error"):
        return UpstreamUnavailable(message, status=status if 500 <= status <= 599 else 503,
                                   deployment=deployment)
    return UpstreamRejected(message, status=status if 400 <= status < 500 else 400,
                            deployment=deployment)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Anthropic sends ``retry-after`` in seconds on 429 and 529."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: Anthropic does not send one


def _detail(body: bytes) -> ErrorDetail | None:
    if not body:
        return None
    try:
        return ERROR_DECODER.decode(body).error
    except (msgspec.DecodeError, RecursionError):
        return None
