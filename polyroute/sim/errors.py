"""OpenAI-shaped error bodies."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from aiohttp import web

_ENCODER = msgspec.json.Encoder()


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


class ApiError(Exception):
    """Raised by handlers; the error middleware turns it into an OpenAI error response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        return _ENCODER.encode(
            ErrorBody(ErrorDetail(self.message, self.type, self.param, self.code))
        )

    def to_response(self) -> web.Response:
        return web.Response(
            status=self.status,
            body=self.body(),
            content_type="application/json",
            headers=self.headers,
        )


def invalid_json() -> ApiError:
    return ApiError(
        400,
        "We could not parse the JSON body of your request. (HINT: This likely means you "
        "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
        "but what was sent was not valid JSON.)",
    )


def missing_parameter(name: str) -> ApiError:
    return ApiError(
        400,
        f"Missing required parameter: '{name}'.",
        param=name,
        code="missing_required_parameter",
    )


def invalid_type(message: str, param: str | None) -> ApiError:
    return ApiError(400, message, param=param, code="invalid_type")


def missing_model() -> ApiError:
    return ApiError(400, "you must provide a model parameter")


def invalid_api_key(provided: str | None) -> ApiError:
    if not provided:
        message = (
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    else:
        message = (
            f"Incorrect API key provided: {mask_key(provided)}. You can find your API key "
            "at https://platform.openai.com/account/api-keys."
        )
    return ApiError(401, message, code="invalid_api_key")


def mask_key(key: str) -> str:
    # OpenAI shows only the ends of a wrong key so it never echoes a secret back.
    if len(key) <= 8:
        return "*" * len(key)
    return f"{key[:3]}{'*' * (len(key) - 7)}{key[-4:]}"


def bad_fault(message: str) -> ApiError:
    return ApiError(400, message, param="x-sim-fault", code="invalid_sim_fault")


def not_found(method: str, path: str) -> ApiError:
    return ApiError(404, f"Invalid URL ({method} {path})")
