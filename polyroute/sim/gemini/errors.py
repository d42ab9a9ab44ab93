"""Google-shaped error bodies (``google.rpc.Status``): ``{"error": {"code", "message",
"status", "details"}}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from aiohttp import web

_ENCODER = msgspec.json.Encoder()


class GeminiError(Exception):
    """Raised by the Gemini handlers; :func:`gemini_dialect` answers with it."""

    def __init__(
        self,
        code: int,
        message: str,
        status: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        error: dict[str, Any] = {"code": self.code, "message": self.message,
                                 "status": self.status}
        if self.details:
            error["details"] = self.details
        return _ENCODER.encode({"error": error})

    def to_response(self) -> web.Response:
        return web.Response(status=self.code, body=self.body(), content_type="application/json",
                            headers=self.headers)


def invalid(message: str) -> GeminiError:
    return GeminiError(400, message, "INVALID_ARGUMENT")


def bad_key() -> GeminiError:
    # Google answers a wrong key with 400, not 401; the reason tells it apart.
    return GeminiError(400, "API key not valid. Please pass a valid API key.",
                       "INVALID_ARGUMENT", details=[{
                           "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                           "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                           "metadata": {"service": "generativelanguage.googleapis.com"}}])


def no_key() -> GeminiError:
    return GeminiError(403, "Method doesn't allow unregistered callers (callers without "
                       "established identity). Please use API Key or other form of API consumer "
                       "identity to call this API.", "PERMISSION_DENIED")


def not_found(what: str) -> GeminiError:
    return GeminiError(404, what, "NOT_FOUND")
