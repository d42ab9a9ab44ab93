"""Azure OpenAI's URLs in front of the OpenAI endpoints:

    POST /openai/deployments/{deployment}/chat/completions?api-version=…
    POST /openai/deployments/{deployment}/embeddings?api-version=…
    POST /openai/deployments/{deployment}/images/…, /audio/… (the media endpoints)
    POST /openai/v1/chat/completions, /openai/v1/embeddings, /openai/v1/responses;
    GET /openai/v1/models
    /openai/files…, /openai/batches… (?api-version=…) and /openai/v1/files…, /openai/v1/batches…

The key comes in ``api-key`` or as ``Authorization: Bearer`` (an Entra token, or on /openai/v1
the key itself); answers are the OpenAI endpoints' own, with Azure's headers.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler

from polyroute.sim.batches import add_batch_routes
from polyroute.sim.chat import chat_completions
from polyroute.sim.embeddings import embeddings
from polyroute.sim.errors import ApiError
from polyroute.sim.media import add_media_routes
from polyroute.sim.model_list import list_models
from polyroute.sim.responses import create_response
from polyroute.sim.state import get_state

PREFIX = "/openai/"
V1_PREFIX = "/openai/v1/"
REGION = "Sweden Central"


def add_azure_routes(app: web.Application) -> None:
    deployment = "/openai/deployments/{deployment}"
    app.router.add_post(f"{deployment}/chat/completions", chat_completions)
    app.router.add_post(f"{deployment}/embeddings", embeddings)
    app.router.add_post("/openai/v1/chat/completions", chat_completions)
    app.router.add_post("/openai/v1/embeddings", embeddings)
    app.router.add_post("/openai/v1/responses", create_response)
    app.router.add_get("/openai/v1/models", list_models)
    add_batch_routes(app, "/openai")  # Files and Batch APIs: not under a deployment
    add_batch_routes(app, "/openai/v1")
    add_media_routes(app, deployment, openai_only=True)
    add_media_routes(app, "/openai/v1", openai_only=True)
    app.on_response_prepare.append(_azure_headers)


async def _azure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Added as a response is sent, so streams and the OpenAI handlers' bodies get them too."""
    if request.path.startswith(PREFIX):
        response.headers["x-ms-region"] = REGION
        response.headers["apim-request-id"] = get_state(request).ids.request_id()[4:]


def _error(status: int, message: str) -> web.Response:
    # Azure's own errors (before the model is reached) carry the status as a string code.
    return ApiError(status, message, code=str(status)).to_response()


@web.middleware
async def azure_dialect(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Azure requests are answered here: their key, the api-version a deployment URL needs,
    and Azure's response headers. The OpenAI middlewares after this one are skipped."""
    if not request.path.startswith(PREFIX):
        return await handler(request)
    expected = get_state(request).settings.api_key
    if expected:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        provided = request.headers.get("api-key") or (token if scheme.lower() == "bearer"
                                                      else "")
        if not hmac.compare_digest(provided.encode(), expected.encode()):
            return _error(401, "Access denied due to invalid subscription key or wrong API "
                          "endpoint. Make sure to provide a valid key for an active "
                          "subscription and use a correct regional API endpoint for your "
                          "resource.")
    if not request.path.startswith(V1_PREFIX) and "api-version" not in request.query:
        return _error(404, "Resource not found")
    try:
        return await request.match_info.handler(request)
    except ApiError as exc:
        return exc.to_response()
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return _error(404, "Resource not found")
