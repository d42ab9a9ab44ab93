"""Google's Gemini API, simulated: ``generateContent``, ``streamGenerateContent?alt=sse``,
``batchEmbedContents``, ``countTokens`` and the model list under ``/v1beta`` (and ``/v1``,
which google-genai uses by default), with the simulator's faults shown the way Gemini shows
them (429 ``RESOURCE_EXHAUSTED`` with a ``RetryInfo``, 503 ``UNAVAILABLE``, a prompt blocked
for safety …)."""

from __future__ import annotations

import hmac
import re

from aiohttp import web
from aiohttp.typedefs import Handler

from polyroute.sim.gemini.errors import GeminiError, bad_key, no_key, not_found
from polyroute.sim.gemini.handlers import get_model, list_models, model_method
from polyroute.sim.gemini.state import GEMINI_STATE, GeminiState
from polyroute.sim.state import get_state

__all__ = ["add_gemini_routes", "gemini_dialect"]

_PATH = re.compile(r"^/(v1|v1beta|v1alpha)/models(?:/(.+))?$")


def add_gemini_routes(app: web.Application, seed: int) -> None:
    """Gemini's paths are dispatched by :func:`gemini_dialect` (``/v1/models/…`` is shared
    with OpenAI's model routes), so only the state is added here."""
    app[GEMINI_STATE] = GeminiState(seed)


def _gemini_target(request: web.Request) -> tuple[bool, str | None]:
    """Whether the request speaks Gemini, and the ``models/`` path segment it names. Under
    ``/v1`` only a ``model:method`` call or Google's key header tells Gemini from OpenAI."""
    match = _PATH.match(request.path)
    if match is None:
        return request.path.startswith(("/v1beta/", "/v1alpha/")), None
    version, target = match.group(1), match.group(2)
    if version != "v1":
        return True, target
    gemini = (request.method == "POST" and target is not None and ":" in target) or (
        "x-goog-api-key" in request.headers)
    return gemini, target


@web.middleware
async def gemini_dialect(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Gemini requests are answered entirely here: their key (``x-goog-api-key`` or
    ``?key=``), routing and Google's error shape; the OpenAI middlewares after this one are
    skipped."""
    gemini, target = _gemini_target(request)
    if not gemini:
        return await handler(request)
    try:
        expected = get_state(request).settings.api_key
        if expected:
            provided = request.headers.get("x-goog-api-key") or request.query.get("key") or ""
            if not provided:
                raise no_key()
            if not hmac.compare_digest(provided.encode(), expected.encode()):
                raise bad_key()
        if request.method == "POST" and target is not None:
            return await model_method(request, target)
        if request.method == "GET" and target is None and _PATH.match(request.path):
            return await list_models(request)
        if request.method == "GET" and target is not None:
            return await get_model(request, target)
        raise not_found(f"Method not found: {request.method} {request.path}")
    except GeminiError as exc:
        return exc.to_response()
