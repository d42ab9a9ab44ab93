"""GET /v1/models in Anthropic's shape, for clients that send ``anthropic-version``."""

from __future__ import annotations

import msgspec
from aiohttp import web

from polyroute.sim.state import get_state

_ENCODER = msgspec.json.Encoder()
# A fixed release date keeps the listing byte-identical between runs.
_CREATED_AT = "2025-01-01T00:00:00Z"


class ModelInfo(msgspec.Struct, kw_only=True):
    type: str = "model"
    id: str
    display_name: str
    created_at: str = _CREATED_AT


class ModelPage(msgspec.Struct, kw_only=True):
    data: list[ModelInfo]
    has_more: bool
    first_id: str | None
    last_id: str | None


def model_page(request: web.Request) -> web.Response:
    """One page of the model list, honouring ``limit`` and ``after_id`` as Anthropic does."""
    models = get_state(request).settings.models
    after = request.query.get("after_id")
    start = models.index(after) + 1 if after in models else 0
    try:
        limit = max(1, min(1000, int(request.query.get("limit", "20"))))
    except ValueError:
        limit = 20
    page = models[start : start + limit]
    body = ModelPage(
        data=[ModelInfo(id=m, display_name=m) for m in page],
        has_more=start + limit < len(models),
        first_id=page[0] if page else None, last_id=page[-1] if page else None)
    return web.Response(body=_ENCODER.encode(body), content_type="application/json")
