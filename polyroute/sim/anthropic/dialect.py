"""Which requests speak Anthropic's dialect, and the middleware that answers them in it."""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler

from polyroute.sim.anthropic.errors import AnthropicError, authentication
from polyroute.sim.anthropic.models import model_page
from polyroute.sim.anthropic.state import get_anthropic_state
from polyroute.sim.state import get_state

MESSAGES_PREFIX = "/v1/messages"


def speaks_anthropic(request: web.Request) -> bool:
    """Messages paths always; other /v1 paths (the model list) when the client says
    ``anthropic-version``, as every Anthropic SDK does."""
    path = request.path
    return path.startswith(MESSAGES_PREFIX) or (
        path.startswith("/v1/") and "anthropic-version" in request.headers)


def _api_key(request: web.Request) -> str:
    """``x-api-key`` (the documented header), or ``Authorization: Bearer`` as the newest
    Anthropic SDKs send an API key."""
    key = request.headers.get("x-api-key")
    if key is not None:
        return key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@web.middleware
async def anthropic_dialect(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Anthropic requests are answered entirely here: their auth and Anthropic's error
    shape. The OpenAI middlewares after this one (Bearer auth, OpenAI error bodies) are skipped
    by calling the route's own handler."""
    if not speaks_anthropic(request):
        return await handler(request)
    request_id = get_anthropic_state(request).request_id()
    try:
        expected = get_state(request).settings.api_key
        if expected:
            provided = _api_key(request)
            if not hmac.compare_digest(provided.encode(), expected.encode()):
                raise authentication(provided or None)
        if request.method == "GET" and request.path == "/v1/models":
            return model_page(request)
        return await request.match_info.handler(request)
    except AnthropicError as exc:
        return exc.to_response(request_id)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        error = AnthropicError(404, f"Not found: {request.method} {request.path}",
                               type="not_found_error")
        return error.to_response(request_id)
