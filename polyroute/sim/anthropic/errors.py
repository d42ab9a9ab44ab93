"""Anthropic-shaped error bodies: ``{"type": "error", "error": {"type", "message"}, …}``."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from aiohttp import web

_ENCODER = msgspec.json.Encoder()

OVERLOADED_STATUS = 529


class ErrorDetail(msgspec.Struct):
    type: str
    message: str


class ErrorBody(msgspec.Struct, kw_only=True):
    type: str = "error"
    error: ErrorDetail
    request_id: str | None = None


class AnthropicError(Exception):
    """Raised by the Anthropic handlers; :func:`anthropic_errors` answers with it."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.headers = dict(headers or {})

    def body(self, request_id: str | None = None) -> bytes:
        return _ENCODER.encode(ErrorBody(error=ErrorDetail(self.type, self.message),
                                          request_id=request_id))

    def to_response(self, request_id: str) -> web.Response:
        headers = {"request-id": request_id, **self.headers}
        return web.Response(status=self.status, body=self.body(request_id),
                            content_type="application/json", headers=headers)


def invalid(message: str) -> AnthropicError:
    return AnthropicError(400, message)


def overloaded() -> AnthropicError:
    return AnthropicError(OVERLOADED_STATUS, "Overloaded", type="overloaded_error")


def authentication(provided: str | None) -> AnthropicError:
    message = "invalid x-api-key" if provided else "x-api-key header is required"
    return AnthropicError(401, message, type="authentication_error")
