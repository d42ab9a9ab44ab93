"""The simulator's aiohttp application."""

from __future__ import annotations

from aiohttp import web

from polyroute.sim.anthropic import add_anthropic_routes, anthropic_dialect
from polyroute.sim.azure import add_azure_routes, azure_dialect
from polyroute.sim.batches import add_batch_routes
from polyroute.sim.bedrock import add_bedrock_routes, bedrock_dialect
from polyroute.sim.chat import chat_completions
from polyroute.sim.control import add_control_routes
from polyroute.sim.embeddings import embeddings
from polyroute.sim.gemini import add_gemini_routes, gemini_dialect
from polyroute.sim.media import add_media_routes, rerank
from polyroute.sim.middleware import check_api_key, openai_errors, record_requests
from polyroute.sim.model_list import list_models, retrieve_model
from polyroute.sim.quota import add_quota_headers, enforce_quota
from polyroute.sim.responses import create_response
from polyroute.sim.settings import SimSettings
from polyroute.sim.state import SIM_STATE, SimState

# Long-context tests send big prompts; aiohttp's 1 MiB default would reject them.
MAX_REQUEST_BYTES = 64 * 1024 * 1024


def build_app(settings: SimSettings | None = None) -> web.Application:
    """Build the simulator app. Raises FaultSpecError (a ValueError) for invalid rules.

    Serve it with `handler_cancellation=True` (as polyroute.sim.server does) so a
    client disconnect cancels the handler and is counted as aborted by the peer.
    """
    app = web.Application(
        middlewares=[record_requests, anthropic_dialect, gemini_dialect, bedrock_dialect,
                     azure_dialect, openai_errors, check_api_key, enforce_quota],
        client_max_size=MAX_REQUEST_BYTES,
    )
    app[SIM_STATE] = SimState.from_settings(settings or SimSettings())
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/responses", create_response)
    app.router.add_post("/v1/embeddings", embeddings)
    add_media_routes(app, "/v1")
    app.router.add_post("/v2/rerank", rerank)  # Cohere's shape
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", retrieve_model)
    add_batch_routes(app, "/v1")
    add_anthropic_routes(app, app[SIM_STATE].settings.seed)
    add_gemini_routes(app, app[SIM_STATE].settings.seed)
    add_bedrock_routes(app, app[SIM_STATE].settings.seed)
    add_azure_routes(app)
    add_control_routes(app)
    app.on_response_prepare.append(add_quota_headers)
    return app
