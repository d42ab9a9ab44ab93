"""GET /v1/models and GET /v1/models/{id}."""

from __future__ import annotations

from aiohttp import web

from polyroute.sim import errors
from polyroute.sim.response_schema import ENCODER, ModelCard, ModelList
from polyroute.sim.state import get_state

# A fixed creation time keeps the listing byte-identical between runs.
_CREATED = 1_700_000_000
_OWNER = "polyroute-sim"


def _card(model_id: str) -> ModelCard:
    return ModelCard(id=model_id, created=_CREATED, owned_by=_OWNER)


async def list_models(request: web.Request) -> web.Response:
    models = get_state(request).settings.models
    body = ENCODER.encode(ModelList(data=[_card(model_id) for model_id in models]))
    return web.Response(body=body, content_type="application/json")


async def retrieve_model(request: web.Request) -> web.Response:
    model_id = request.match_info["model"]
    if model_id not in get_state(request).settings.models:
        raise errors.ApiError(
            404,
            f"The model '{model_id}' does not exist",
            param="model",
            code="model_not_found",
        )
    return web.Response(body=ENCODER.encode(_card(model_id)), content_type="application/json")
