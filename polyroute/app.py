"""The composition root: the one place where concrete objects are built and wired together."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
from aiohttp import web

from polyroute import __version__
from polyroute.adapters.client import UpstreamClient
from polyroute.adapters.http_transport import AiohttpTransport
from polyroute.adapters.registry import AdapterRegistry
from polyroute.adapters.transport import Transport
from polyroute.config import GatewayConfig
from polyroute.engine.auto import AutoRoutes
from polyroute.engine.catalog import ModelCatalog
from polyroute.engine.circuit import Breakers
from polyroute.engine.gateway import Gateway
from polyroute.engine.observer import RequestObserver
from polyroute.engine.router import Router
from polyroute.errors import AuthenticationFailed
from polyroute.observability.logging import install_redaction
from polyroute.observability.metrics import CONTENT_TYPE, Metrics
from polyroute.state.redis_circuits import RedisCircuits, redis_client
from polyroute.surface.anthropic.handlers import AnthropicHandlers
from polyroute.surface.anthropic.handlers import encode_error as anthropic_error
from polyroute.surface.exchange import ChatExchange
from polyroute.surface.http import credentials, guarded, request_id
from polyroute.surface.listener import ConnectionGate
from polyroute.surface.openai.handlers import OpenAIHandlers, encode_error
from polyroute.surface.responses.handlers import ResponsesHandlers
from polyroute.surface.responses.handlers import encode_error as responses_error
from polyroute.wiring import PolicyStack

log = logging.getLogger("polyroute")




@dataclass(slots=True)
class Components:
    config: GatewayConfig
    gateway: Gateway
    metrics: Metrics
    upstream: UpstreamClient
    breakers: Breakers
    shared_circuits: RedisCircuits | None
    background: list[asyncio.Task[None]] = field(default_factory=list)
    policy_stack: PolicyStack | None = None


APP_KEY = web.AppKey("polyroute", Components)


def build_app(config: GatewayConfig, transport: Transport | None = None) -> web.Application:
    """``transport``: where upstream requests go (tests pass an in-memory one); by default
    real sockets."""
    install_redaction(config.secrets)
    metrics = Metrics(config.groups,
                      (d.name for g in config.groups.values() for d in g.deployments),
                      max_model_labels=config.metrics.max_model_labels)
    upstream = UpstreamClient(transport or AiohttpTransport(), secrets=config.secrets)
    # One record per request: the policy's settle appends it to the ledger (also the
    # request log); observers only count.
    observers: list[RequestObserver] = [metrics]
    adapters = AdapterRegistry(upstream)
    shared = None
    if config.state.redis_url is not None:
        shared = RedisCircuits(redis_client(config.state))
    breakers = Breakers(time.monotonic, on_transition=_log_transition, shared=shared)
    breakers.track(d.upstream for g in config.groups.values() for d in g.deployments)
    stack = PolicyStack(config)  # keys, limits, budgets, ledger, admin API
    if stack.ledger is not None:
        ledger = stack.ledger
        metrics.watch_ledger(ledger.backlog_bytes, lambda: ledger.written,
                             lambda: float(ledger.failing), lambda: ledger.quarantined)
    directory = stack.directory
    metrics.watch_directory(lambda: len(directory.quarantined))
    policy = stack.policy
    gateway = Gateway(Router(config, auto=AutoRoutes(config)), adapters, observers, breakers,
                      policy)
    parts = Components(config, gateway, metrics, upstream, breakers, shared,
                       policy_stack=stack)

    app = web.Application(client_max_size=config.server.max_body_bytes)
    app[APP_KEY] = parts
    exchange = ChatExchange(gateway, policy, config.server)
    openai = OpenAIHandlers(exchange, ModelCatalog(config, adapters))
    anthropic = AnthropicHandlers(exchange)
    responses = ResponsesHandlers(exchange)
    routes = [
        ("POST", "/v1/chat/completions", openai.chat_completions, encode_error),
        ("POST", "/chat/completions", openai.chat_completions, encode_error),
        ("POST", "/v1/embeddings", openai.embeddings, encode_error),
        ("POST", "/embeddings", openai.embeddings, encode_error),
        ("GET", "/v1/models", openai.models, encode_error),
        ("GET", "/models", openai.models, encode_error),
        ("POST", "/v1/responses", responses.create, responses_error),
        ("POST", "/v1/messages", anthropic.messages, anthropic_error),
        ("POST", "/v1/messages/count_tokens", anthropic.count_tokens, anthropic_error),
    ]
    for method, path, handler, encoder in routes:
        app.router.add_route(method, path, guarded(handler, encoder))
    stack.admin.add_to(app)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    if config.metrics.enabled:
        app.router.add_get("/metrics", _metrics)
    app.middlewares.append(_request_id_and_json_errors)
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    return app


def watch_connections(app: web.Application, gate: ConnectionGate) -> None:
    """Export the listener's connection counts (the listener is built outside the app)."""
    app[APP_KEY].metrics.watch_connections(lambda: gate.open, lambda: gate.refused)


def _log_transition(upstream: str, before: str, after: str, at: float) -> None:
    log.warning("circuit of %s: %s → %s", upstream, before, after)


async def _startup(app: web.Application) -> None:
    parts = app[APP_KEY]
    if parts.policy_stack is not None:
        await parts.policy_stack.start()
    if parts.shared_circuits is not None:
        parts.background.append(asyncio.create_task(
            _sync_circuits(parts.breakers, parts.config.state.sync_interval_s)))


async def _sync_circuits(breakers: Breakers, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        await breakers.sync()


async def _cleanup(app: web.Application) -> None:
    parts = app[APP_KEY]
    for task in parts.background:
        task.cancel()
    await asyncio.gather(*parts.background, return_exceptions=True)
    if parts.shared_circuits is not None:
        await parts.shared_circuits.aclose()
    await parts.upstream.aclose()
    if parts.policy_stack is not None:
        await parts.policy_stack.aclose()


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


async def _readyz(request: web.Request) -> web.Response:
    parts = request.app[APP_KEY]
    problems = []
    config = parts.config
    if not config.groups and not config.open_vendors:
        problems.append("no model group or vendor is configured")
    body = {
        "status": "not ready" if problems else "ready",
        "problems": problems,
        "model_groups": len(config.groups),
        "vendors": sorted(config.open_vendors),
    }
    return web.json_response(body, status=503 if problems else 200)


async def _metrics(request: web.Request) -> web.Response:
    parts = request.app[APP_KEY]
    if parts.config.metrics.auth == "admin":
        given = credentials(request)
        master = parts.config.auth.master_key
        if given is None or master is None or not hmac.compare_digest(given.encode(),
                                                                        master.encode()):
            return web.Response(status=401, body=encode_error(AuthenticationFailed(
                "/metrics needs the master key (metrics.auth: admin).")),
                content_type="application/json")
    # Copied on the loop, formatted in a thread: a scrape never holds the event loop.
    render = parts.metrics.freeze()
    body = await asyncio.get_running_loop().run_in_executor(None, render)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


_error_encoder = msgspec.json.Encoder()


@web.middleware
async def _request_id_and_json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every response names its request (``x-request-id``: health checks, metrics, the admin
    API and 404s too, not only model calls, which set it themselves), and aiohttp's own
    404/405 are JSON in OpenAI's shape, not an HTML page."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        body = {"error": {"message": f"{exc.reason}: {request.method} {request.path}",
                          "type": "invalid_request_error", "param": None,
                          "code": exc.reason.lower().replace(" ", "_")}}
        return web.Response(status=exc.status, body=_error_encoder.encode(body),
                            content_type="application/json",
                            headers={"x-request-id": request_id(request)})
    if not response.prepared and "x-request-id" not in response.headers:
        response.headers["x-request-id"] = request_id(request)
    return response
