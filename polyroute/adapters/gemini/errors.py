"""Gemini's error bodies and statuses → the gateway's error tree, the vendor's message kept.

Google's errors follow ``google.rpc.Status``: ``{"error": {"code": 429, "message": …,
"status": "RESOURCE_EXHAUSTED", "details": [{"@type": "…RetryInfo", "retryDelay": "37s"}]}}``.
The canonical ``status`` decides; the HTTP code fills in when the body is not Google's.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from polyroute.adapters.gemini.wire import ERROR_DECODER, ERROR_LIST_DECODER, Error
from polyroute.errors import (
    ContextWindowExceeded,
    UpstreamAuthError,
    UpstreamError,
    UpstreamModelNotFound,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)

_STATUS_OF = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "INTERNAL": 500, "UNKNOWN": 500,
    "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
}
# Gemini answers an invalid key with 400 INVALID_ARGUMENT; only the reason tells it apart.
_AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED",
                           "ACCESS_TOKEN_EXPIRED", "SERVICE_DISABLED"})
# "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
_CONTEXT_MARKERS = ("exceeds the maximum number of tokens", "input token count",
                    "context window", "too many tokens")


def error_from_response(
    status: int, body: bytes, headers: Mapping[str, str], deployment: str
) -> UpstreamError:
    error = _decode(body)
    if error is None:
        text = body[:300].decode("utf-8", "replace").strip()
        error = Error(code=status, message=text or f"upstream returned HTTP {status}")
    return error_from_status(error, status, headers, deployment)


def error_from_stream(data: bytes, deployment: str) -> UpstreamError | None:
    """A stream that fails after it began sends ``data: {"error": {…}}``."""
    if not data.lstrip().startswith(b'{"error"'):
        return None
    error = _decode(data)
    if error is None:
        return None
    return error_from_status(error, error.code or _STATUS_OF.get(error.status, 500), {},
                             deployment)


def error_from_status(
    error: Error, status: int, headers: Mapping[str, str], deployment: str
) -> UpstreamError:
    kind = error.status
    message = error.message or f"upstream returned HTTP {status}"
    if status < 400:
        status = _STATUS_OF.get(kind, 500)
    reasons = {d.reason for d in error.details if d.reason}
    if kind == "RESOURCE_EXHAUSTED" or status == 429:
        return UpstreamRateLimited(message, retry_after=retry_after(error, headers),
                                   deployment=deployment)
    if kind in ("UNAUTHENTICATED", "PERMISSION_DENIED") or status in (401, 403) or (
            reasons & _AUTH_REASONS):
        return UpstreamAuthError(f"the upstream refused the gateway's credentials: {message}",
                                 deployment=deployment)
    if kind == "NOT_FOUND" or status == 404:
        return UpstreamModelNotFound(f"the upstream does not know this model: {message}",
                                     deployment=deployment)
    lowered = message.lower()
    if status == 400 and any(marker in lowered for marker in _CONTEXT_MARKERS):
        return ContextWindowExceeded(message, deployment=deployment, param="messages")
    if status == 408 or status >= 500:
        return UpstreamUnavailable(message, status=status if 500 <= status <= 599 else 503,
                                   deployment=deployment, code=kind.lower() or None)
    return UpstreamRejected(message, status=status if 400 <= status < 500 else 400,
                            code=kind.lower() or None, deployment=deployment)


def retry_after(error: Error, headers: Mapping[str, str]) -> float | None:
    """``RetryInfo.retryDelay`` ("37s", "1.5s"), else a ``Retry-After`` header in seconds."""
    for detail in error.details:
        delay = detail.retry_delay
        if delay and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                break
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    return None


def _decode(body: bytes) -> Error | None:
    if not body:
        return None
    try:
        if body.lstrip().startswith(b"["):  # a stream without alt=sse fails as a JSON array
            first = ERROR_LIST_DECODER.decode(body)
            return first[0].error if first else None
        return ERROR_DECODER.decode(body).error
    except (msgspec.DecodeError, RecursionError):
        return None
