"""AWS-shaped errors: the kind in ``x-amzn-ErrorType``, ``{"message": …}`` in the body."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from aiohttp import web

_ENCODER = msgspec.json.Encoder()
_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"


class BedrockError(Exception):
    """Raised by the Bedrock handlers; :func:`bedrock_dialect` answers with it."""

    def __init__(self, status: int, kind: str, message: str, *,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.headers = dict(headers or {})

    def to_response(self, request_id: str) -> web.Response:
        headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": f"{self.kind}:{_NAMESPACE}",
                   **self.headers}
        return web.Response(status=self.status, body=_ENCODER.encode({"message": self.message}),
                            content_type="application/json", headers=headers)


def validation(message: str) -> BedrockError:
    return BedrockError(400, "ValidationException", message)


def denied(kind: str, message: str, status: int = 403) -> BedrockError:
    return BedrockError(status, kind, message)
