"""A per-minute request quota, as OpenAI enforces one per model and organisation: every chat
answer carries ``x-ratelimit-{limit,remaining,reset}-requests``, and a request beyond the
quota gets 429 (with the same headers and a Retry-After). Off unless ``rate_limit_rpm``."""

from __future__ import annotations

import math
import time
from collections import deque

from aiohttp import web
from aiohttp.typedefs import Handler

from polyroute.sim.errors import ApiError
from polyroute.sim.state import get_state

_WINDOW_S = 60.0
_HEADERS_KEY = web.RequestKey("polyroute_sim_quota_headers", dict[str, str])
_LIMITED_PATHS = frozenset({"/v1/chat/completions"})


class RequestQuota:
    def __init__(self, rpm: int) -> None:
        self.rpm = rpm
        self._sent: deque[float] = deque()

    def take(self, now: float) -> tuple[bool, dict[str, str]]:
        """(admitted, the rate-limit headers of the answer)."""
        while self._sent and self._sent[0] <= now - _WINDOW_S:
            self._sent.popleft()
        admitted = len(self._sent) < self.rpm
        if admitted:
            self._sent.append(now)
        reset_s = self._sent[0] + _WINDOW_S - now if self._sent else 0.0
        headers = {
            "x-ratelimit-limit-requests": str(self.rpm),
            "x-ratelimit-remaining-requests": str(self.rpm - len(self._sent)),
            "x-ratelimit-reset-requests": f"{max(reset_s, 0.0):.3f}s",
        }
        if not admitted:
            headers["retry-after"] = str(max(1, math.ceil(reset_s)))
        return admitted, headers


@web.middleware
async def enforce_quota(request: web.Request, handler: Handler) -> web.StreamResponse:
    quota = get_state(request).quota
    if quota is None or request.path not in _LIMITED_PATHS:
        return await handler(request)
    admitted, headers = quota.take(time.monotonic())
    if not admitted:
        raise ApiError(429, f"Rate limit reached on requests per min (RPM): Limit {quota.rpm}.",
                       type="requests", code="rate_limit_exceeded", headers=headers)
    request[_HEADERS_KEY] = headers
    return await handler(request)


async def add_quota_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: streams are prepared inside the handler, so headers go on here."""
    headers = request.get(_HEADERS_KEY)
    if headers is not None:
        response.headers.update(headers)
