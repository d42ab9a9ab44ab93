"""Faults that replace the whole response: error statuses, resets and silence."""

from __future__ import annotations

import asyncio

from aiohttp import web

from polyroute.sim.connection import close_connection, reset_connection
from polyroute.sim.errors import ApiError
from polyroute.sim.faults import Fault, FaultName

_RATE_LIMIT_PER_MINUTE = 60


def _seconds_text(seconds: float) -> str:
    return str(int(seconds)) if seconds.is_integer() else f"{seconds:g}"


def _duration_text(seconds: float) -> str:
    """OpenAI's x-ratelimit-reset-* format: '1s', '1.5s', '250ms'."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{_seconds_text(seconds)}s"


def rate_limit_error(model: str, fault: Fault) -> ApiError:
    with_headers = fault.name is FaultName.RATE_LIMIT
    retry_after = fault.param("retry_after") if with_headers else 1.0
    headers = {
        "x-ratelimit-limit-requests": str(_RATE_LIMIT_PER_MINUTE),
        "x-ratelimit-remaining-requests": "0",
    }
    if with_headers:
        headers["retry-after"] = _seconds_text(retry_after)
        headers["x-ratelimit-reset-requests"] = _duration_text(retry_after)
    return ApiError(
        429,
        f"Rate limit reached for {model} in organization org-polyroute-sim on requests per "
        f"min (RPM): Limit {_RATE_LIMIT_PER_MINUTE}, Used {_RATE_LIMIT_PER_MINUTE}, "
        f"Requested 1. Please try again in {_duration_text(retry_after)}. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
        type="requests",
        code="rate_limit_exceeded",
        headers=headers,
    )


def fault_error(fault: Fault, *, model: str, prompt_tokens: int, param: str) -> ApiError | None:
    """The OpenAI error a fault stands for, or None when the fault is not an error status."""
    name = fault.name
    if name in (FaultName.RATE_LIMIT, FaultName.RATE_LIMIT_NO_RETRY_AFTER):
        return rate_limit_error(model, fault)
    if name is FaultName.SERVER_ERROR:
        return ApiError(
            500,
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
        )
    if name is FaultName.UNAVAILABLE:
        return ApiError(503, "The server is overloaded or not ready yet.", type="server_error")
    if name is FaultName.CONTEXT_LENGTH_EXCEEDED:
        limit = fault.int_param("limit")
        used = max(prompt_tokens, limit + 1)
        return ApiError(
            400,
            f"This model's maximum context length is {limit} tokens. However, your "
            f"messages resulted in {used} tokens. Please reduce the length of the messages.",
            param=param,
            code="context_length_exceeded",
        )
    if name is FaultName.CONTENT_POLICY_VIOLATION:
        return ApiError(
            400,
            "Your request was rejected as a result of our safety system. Your prompt may "
            "contain text that is not allowed by our safety system.",
            code="content_policy_violation",
        )
    return None


async def fault_response(
    request: web.Request, fault: Fault, *, model: str, prompt_tokens: int, param: str
) -> web.StreamResponse | None:
    """Answer the request according to `fault`, or return None to let the body be sent.

    For the connection faults the returned response is never written: the transport
    is already gone, and aiohttp drops the write quietly.
    """
    error = fault_error(fault, model=model, prompt_tokens=prompt_tokens, param=param)
    if error is not None:
        return error.to_response()
    if fault.name is FaultName.RESET_BEFORE_HEADERS:
        reset_connection(request)
        return web.Response()
    if fault.name is FaultName.NO_RESPONSE:
        await asyncio.sleep(fault.param("hold_s"))
        close_connection(request)
        return web.Response()
    return None
