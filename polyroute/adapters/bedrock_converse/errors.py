"""Bedrock's errors → the gateway's error tree, the vendor's message kept.

AWS names the kind of every error: ``x-amzn-ErrorType: ThrottlingException:http://…`` on an
HTTP error, ``:exception-type: throttlingException`` on an exception frame inside a stream. The
kind decides; the status only fills in when neither is there (a proxy's page, say).
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from polyroute.adapters.bedrock_converse.wire import ERROR_DECODER
from polyroute.errors import (
    ContextWindowExceeded,
    UpstreamAuthError,
    UpstreamError,
    UpstreamModelNotFound,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)

_RATE_LIMITED = frozenset({"throttlingexception", "toomanyrequestsexception",
                           "servicequotaexceededexception"})
_UNAVAILABLE = frozenset({"serviceunavailableexception", "internalserverexception",
                          "modelstreamerrorexception", "modelerrorexception",
                          "modeltimeoutexception", "modelnotreadyexception",
                          "internalfailure", "serviceunavailable"})
_AUTH = frozenset({"accessdeniedexception", "unrecognizedclientexception",
                   "invalidsignatureexception", "expiredtokenexception",
                   "incompletesignatureexception", "missingauthenticationtokenexception",
                   "signaturedoesnotmatch", "invalidclienttokenid"})
_NOT_FOUND = frozenset({"resourcenotfoundexception"})
# Bedrock's wording for a prompt over the context window differs by model: "Input is too long
# for requested model.", "prompt is too long: 215000 tokens > 200000 maximum", "too many input
# tokens", "…exceeds the context window…".
_CONTEXT_MARKERS = ("input is too long", "prompt is too long", "too many input tokens",
                    "context window", "maximum context length", "too many total text bytes")


def error_from_response(
    status: int, body: bytes, headers: Mapping[str, str], deployment: str
) -> UpstreamError:
    kind = headers.get("x-amzn-ErrorType", "").partition(":")[0]
    return error_from_kind(kind, status, _message(body, status), deployment)


def error_from_exception_frame(kind: str, payload: bytes, deployment: str) -> UpstreamError:
    """``:message-type: exception`` inside a stream: the answer failed where it stands."""
    return error_from_kind(kind, 0, _message(payload, 500), deployment)


def error_from_kind(kind: str, status: int, message: str, deployment: str) -> UpstreamError:
    name = kind.lower()
    lowered = message.lower()
    if name in _RATE_LIMITED or status == 429:
        return UpstreamRateLimited(message, deployment=deployment)
    if name in _AUTH or status in (401, 403):
        return UpstreamAuthError(f"the upstream refused the gateway's credentials: {message}",
                                 deployment=deployment)
    if name in _NOT_FOUND or status == 404:
        return UpstreamModelNotFound(f"the upstream does not know this model: {message}",
                                     deployment=deployment)
    if name == "validationexception" or status == 400:
        if any(marker in lowered for marker in _CONTEXT_MARKERS):
            return ContextWindowExceeded(message, deployment=deployment, param="messages")
        return UpstreamRejected(message, status=400, code="validation_error",
                                deployment=deployment)
    if name in _UNAVAILABLE or status == 408 or status >= 500 or status == 0:
        return UpstreamUnavailable(message, status=status if 500 <= status <= 599 else 503,
                                   code=name or None, deployment=deployment)
    return UpstreamRejected(message, status=status if 400 <= status < 500 else 400,
                            code=name or None, deployment=deployment)


def _message(body: bytes, status: int) -> str:
    if body:
        try:
            decoded = ERROR_DECODER.decode(body)
            text = decoded.message or decoded.Message
            if text:
                return text
        except (msgspec.DecodeError, RecursionError):
            pass
        text = body[:300].decode("utf-8", "replace").strip()
        if text:
            return text
    return f"upstream returned HTTP {status}"
