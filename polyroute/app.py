"""The composition root: the one place where concrete objects are built and wired together."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from polyroute import __version__
from polyroute.adapters.anthropic_messages.batches import MessageBatchClient
from polyroute.adapters.bedrock_converse.batch import BedrockBatchClient
from polyroute.adapters.client import UpstreamClient
from polyroute.adapters.http_transport import AiohttpTransport
from polyroute.adapters.openai_chat.files import FilesClient
from polyroute.adapters.registry import AdapterRegistry
from polyroute.adapters.transport import Transport
from polyroute.cache.memory import MemoryStore
from polyroute.cache.semantic import SemanticCache
from polyroute.cache.store import CacheStore
from polyroute.config import GatewayConfig
from polyroute.engine.affinity import PrefixAffinity
from polyroute.engine.auto import AutoRoutes
from polyroute.engine.batches import Batches
from polyroute.engine.caps import ShareCaps
from polyroute.engine.catalog import ModelCatalog
from polyroute.engine.circuit import Breakers
from polyroute.engine.gateway import Gateway
from polyroute.engine.guardrails import Guardrails, hooks_from
from polyroute.engine.message_batches import MessageBatches
from polyroute.engine.observer import RequestObserver
from polyroute.engine.response_cache import ResponseCache
from polyroute.engine.room import Room
from polyroute.engine.router import Router
from polyroute.engine.tool_loop import ToolLoop
from polyroute.engine.tools import ToolHub
from polyroute.errors import AuthenticationFailed, UpstreamError, UpstreamUnavailable
from polyroute.observability.logging import install_redaction
from polyroute.observability.metrics import CONTENT_TYPE, Metrics
from polyroute.observability.request_log import (
    FileSink,
    LoggerSink,
    RequestLog,
    WebhookSink,
    Writer,
)
from polyroute.observability.tracing import Tracer
from polyroute.policy.console import ConsoleService
from polyroute.policy.deployment_limits import DeploymentLimits
from polyroute.storage.objects import ObjectStore, ResponseStore
from polyroute.surface.anthropic.handlers import AnthropicHandlers
from polyroute.surface.anthropic.handlers import encode_error as anthropic_error
from polyroute.surface.batches.anthropic import MessageBatchHandlers
from polyroute.surface.batches.handlers import BatchHandlers
from polyroute.surface.bedrock.handlers import BedrockHandlers, with_error_type
from polyroute.surface.bedrock.handlers import encode_error as bedrock_error
from polyroute.surface.console.routes import ConsoleRoutes
from polyroute.surface.exchange import ChatExchange
from polyroute.surface.feedback import FeedbackHandler
from polyroute.surface.gemini.handlers import GeminiHandlers
from polyroute.surface.gemini.handlers import encode_error as gemini_error
from polyroute.surface.http import credentials, guarded, request_id
from polyroute.surface.listener import ConnectionGate
from polyroute.surface.mcp.handlers import McpHandlers
from polyroute.surface.openai import uploads
from polyroute.surface.openai.handlers import OpenAIHandlers, encode_error
from polyroute.surface.openai.media import MediaHandlers, media_routes
from polyroute.surface.responses.handlers import ResponsesHandlers
from polyroute.surface.responses.handlers import encode_error as responses_error
from polyroute.wiring import PolicyStack

if TYPE_CHECKING:
    # redis-py (~8 MB of a worker's private memory) is imported only when a Redis URL is
    # configured: the modules that use it are imported where they are built.
    from polyroute.state.redis_busy import RedisBusy
    from polyroute.state.redis_circuits import RedisCircuits

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
    catalog: ModelCatalog | None = None
    shared_busy: RedisBusy | None = None
    shared_caps: RedisBusy | None = None
    """The vendor-share caps' windows, summed over replicas (issue 14)."""
    closing: bool = False
    """Set when the app shuts down: the background loops stop (see ``_cleanup``)."""
    tracer: Tracer | None = None
    request_log: RequestLog | None = None
    tools: ToolHub | None = None
    """The MCP gateway's upstream servers (their sessions and stdio processes)."""
    batches: Batches | None = None
    message_batches: MessageBatches | None = None
    guardrails_of: Callable[[GatewayConfig], Guardrails] | None = None
    """Builds the guardrail hooks of a config (a reload rebuilds them)."""


APP_KEY = web.AppKey("polyroute", Components)


def build_app(config: GatewayConfig, transport: Transport | None = None) -> web.Application:
    """``transport``: where upstream requests go (tests pass an in-memory one); by default
    real sockets."""
    install_redaction(config.secrets)
    metrics = Metrics(config.groups,
                      (d.name for g in config.groups.values() for d in g.deployments),
                      max_model_labels=config.metrics.max_model_labels)
    tracer = _tracer(config, metrics)
    upstream = UpstreamClient(transport or AiohttpTransport(), secrets=config.secrets,
                              outgoing=tracer.outgoing if tracer is not None else None)
    # One record per request: the policy's settle appends it to the ledger (also the
    # request log); observers only count (and the tracer ends the request's span).
    observers: list[RequestObserver] = [metrics]
    if tracer is not None:
        observers.append(tracer)
    request_log = _request_log(config, metrics)
    if request_log is not None:
        observers.append(request_log)
    adapters = AdapterRegistry(upstream)
    shared = None
    if config.state.redis_url is not None:
        from polyroute.state.redis_busy import RedisBusy
        from polyroute.state.redis_circuits import RedisCircuits, redis_client

        shared = RedisCircuits(redis_client(config.state))
    def transition(upstream: str, before: str, after: str, at: float) -> None:
        _log_transition(upstream, before, after, at)
        metrics.circuit_transition(upstream, before, after, at)

    breakers = Breakers(time.monotonic, on_transition=transition, shared=shared)
    metrics.watch_circuits(lambda: {(u,): _CIRCUIT_LEVEL[s] for u, s in breakers.states().items()})
    breakers.track(d.upstream for g in config.groups.values() for d in g.deployments)
    stack = PolicyStack(config)  # keys, limits, budgets, ledger, admin API
    if stack.ledger is not None:
        ledger = stack.ledger
        metrics.watch_ledger(ledger.backlog_bytes, lambda: ledger.written,
                             lambda: float(ledger.failing), lambda: ledger.quarantined)
    stack.metrics = metrics  # the dependence gauges, measured from the ledger
    observers.append(stack.refusals)  # policy refusals into the audit log, batched
    directory = stack.directory
    metrics.watch_directory(lambda: len(directory.quarantined))
    limiter = stack.limiter
    metrics.watch_state_store(lambda: float(bool(limiter.status().get("healthy", True))))
    metrics.watch_budgets(lambda: {k: v for k, v in stack.budget_use.items()})
    policy = stack.policy
    async def post(url: str, body: bytes, timeout_s: float) -> bytes:
        # webhooks over the shared client; their errors fail open or closed
        return await upstream.fetch(
            "POST", url, body=body, headers={"content-type": "application/json"},
            connect_s=timeout_s, deployment="guardrail", errors=_guardrail_error,
            total_s=timeout_s)

    def guardrails_of(config: GatewayConfig) -> Guardrails:
        # always built: a governance policy's answer_data_classes need it with none configured
        return Guardrails(hooks_from(config.guardrails, post))

    guardrails = guardrails_of(config)
    room = Room()  # what the deployments are doing now: kept across reloads
    upstream.on_headers = room.observe_headers  # vendors' x-ratelimit-* headers
    cache = _response_cache(config)
    if cache is not None:
        metrics.watch_cache(cache.stored_bytes, lambda: cache.errors)
    affinity = PrefixAffinity(lambda upstream: breakers.state(upstream) == "closed")
    caps = ShareCaps(config)  # the vendor-share windows: kept across reloads
    router = Router(config, auto=AutoRoutes(config), room=room, affinity=affinity, caps=caps)
    gateway = Gateway(router, adapters, observers, breakers, policy,
                      quota=DeploymentLimits(stack.limiter), cache=cache, tracer=tracer,
                      guardrails=guardrails)
    parts = Components(config, gateway, metrics, upstream, breakers, shared,
                       policy_stack=stack, tracer=tracer, request_log=request_log,
                       guardrails_of=guardrails_of)
    if config.state.redis_url is not None:  # least_busy counts other replicas' requests too
        parts.shared_busy = RedisBusy(redis_client(config.state), config.state.sync_interval_s)
        parts.shared_caps = RedisBusy(redis_client(config.state), config.state.sync_interval_s,
                                      prefix="polyroute:caps:")
        caps.shared = True
    stack.vendor_caps = caps.status
    metrics.watch_vendor_caps(lambda: _labelled(caps.unmet), lambda: _labelled(caps.steered),
                              caps.shares, lambda: caps.shared)

    app = web.Application(client_max_size=config.server.max_body_bytes)
    app[APP_KEY] = parts
    exchange = ChatExchange(gateway, policy, config.server)
    catalog = parts.catalog = ModelCatalog(config, adapters)
    tools = parts.tools = ToolHub(config.mcp, breakers, policy, observers)
    openai = OpenAIHandlers(exchange, catalog, ToolLoop(gateway, tools))
    anthropic = AnthropicHandlers(exchange)
    gemini = GeminiHandlers(exchange, catalog)
    responses = ResponsesHandlers(exchange, ResponseStore(stack.db),
                                  config.storage.response_retention_s)
    objects = ObjectStore(stack.db)
    # A batch's settlement is counted and logged like a request (no trace: it had no span).
    counted: list[RequestObserver] = [metrics, *([request_log] if request_log else [])]
    anthropic_batches = MessageBatchClient(upstream)
    batches = parts.batches = Batches(lambda: gateway.router, policy, FilesClient(upstream),
                                      objects, stack.prices,
                                      config.limits.default_max_output_tokens,
                                      observers=counted, messages=anthropic_batches,
                                      bedrock=BedrockBatchClient(upstream))
    message_batches = parts.message_batches = MessageBatches(
        lambda: gateway.router, policy, anthropic_batches, objects, stack.prices,
        observers=counted)
    bedrock = BedrockHandlers(exchange)
    media = MediaHandlers(exchange, config.server)
    ledger_writer = stack.ledger
    feedback = FeedbackHandler(exchange.principal, exchange.body,
                               stack.db if ledger_writer is not None else None,
                               ledger_writer.flush if ledger_writer is not None else None)
    routes = [
        ("POST", "/v1/chat/completions", openai.chat_completions, encode_error),
        ("POST", "/chat/completions", openai.chat_completions, encode_error),
        ("POST", "/v1/embeddings", openai.embeddings, encode_error),
        ("POST", "/embeddings", openai.embeddings, encode_error),
        *((method, f"{prefix}{path}", handler, encode_error)
          for prefix in ("/v1", "") for method, path, handler in media_routes(media)),
        ("POST", "/v2/rerank", media.rerank, encode_error),  # Cohere's SDK (ClientV2)
        ("GET", "/v1/models", openai.models, encode_error),
        ("GET", "/models", openai.models, encode_error),
        ("POST", "/v1/feedback", feedback.post, encode_error),
        ("POST", "/v1/responses", responses.create, responses_error),
        ("GET", "/v1/responses/{response_id}", responses.retrieve, responses_error),
        ("DELETE", "/v1/responses/{response_id}", responses.delete, responses_error),
        *((method, path, handler, encode_error)
          for method, path, handler in BatchHandlers(exchange, batches).routes()),
        *((method, path, handler, anthropic_error) for method, path, handler
          in MessageBatchHandlers(exchange, message_batches).routes()),
        ("POST", "/v1/messages", anthropic.messages, anthropic_error),
        ("POST", "/v1/messages/count_tokens", anthropic.count_tokens, anthropic_error),
        ("POST", "/v1beta/models/{target:.+}", gemini.call, gemini_error),
        ("GET", "/v1beta/models", gemini.models, gemini_error),
        ("GET", "/v1beta/models/{name:.+}", gemini.model, gemini_error),
    ]
    for method, path, handler, encoder in routes:
        app.router.add_route(method, path, guarded(handler, encoder))
    for path, handler in (("/model/{model_id:.+}/converse", bedrock.converse),
                          ("/model/{model_id:.+}/converse-stream",
                           bedrock.converse_stream)):
        app.router.add_post(path, with_error_type(guarded(handler, bedrock_error)))
    mcp = McpHandlers(tools, policy, config.server)
    app.router.add_post("/mcp", mcp.post)
    for method in ("GET", "DELETE"):
        app.router.add_route(method, "/mcp", mcp.not_allowed)
    stack.admin.add_to(app)
    console = ConsoleRoutes(ConsoleService(stack.service, stack.db), config, breakers, metrics)
    stack.admin.add_routes(app, console.api())  # behind the admin API's key check
    console.add_static(app)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    if config.metrics.enabled:
        app.router.add_get("/metrics", _metrics)
    app.middlewares.append(_request_id_and_json_errors)
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    return app


def _response_cache(config: GatewayConfig) -> ResponseCache | None:
    """None when no group can cache (the default): nothing is looked up at all."""
    settings = config.cache
    modes = {name: group.cache for name, group in config.groups.items()}
    if settings.mode == "off" and all(m in (None, "off") for m in modes.values()):
        return None
    store: CacheStore
    if settings.backend == "redis" and config.state.redis_url is not None:
        from polyroute.cache.redis_store import RedisStore

        store = RedisStore(config.state.redis_url, timeout_s=config.state.timeout_s)
    else:
        store = MemoryStore(settings.max_bytes)
    semantic = None
    chosen = frozenset(name for name, group in config.groups.items() if group.semantic)
    if chosen:
        # The optional embedding model (config checked it is installed), and numpy with it:
        # imported and loaded only when a group uses it.
        from polyroute.cache.minilm import MiniLM

        semantic = SemanticCache(MiniLM(), settings.semantic_threshold, chosen)
    return ResponseCache(store, settings, modes, semantic=semantic)


def _tracer(config: GatewayConfig, metrics: Metrics) -> Tracer | None:
    """The OpenTelemetry (OTLP/HTTP) tracer, when tracing is on."""
    t = config.tracing
    if not t.enabled:
        return None
    tracer = Tracer(endpoint=t.endpoint, headers=t.headers, service_name=t.service_name,
                    version=__version__, sample_ratio=t.sample_ratio, max_queue=t.max_queue,
                    export_interval_s=t.export_interval_s)
    metrics.watch_export("trace_spans", lambda: tracer.exported, lambda: tracer.dropped,
                         lambda: tracer.failed)
    return tracer


def _request_log(config: GatewayConfig, metrics: Metrics) -> RequestLog | None:
    settings = config.logs
    writers: list[Writer] = []
    if settings.requests:
        writers.append(LoggerSink())
    if settings.file is not None:
        f = settings.file
        writers.append(FileSink(f.path, f.max_bytes, f.backups))
    if settings.webhook is not None:
        w = settings.webhook
        writers.append(WebhookSink(w.url, w.headers, w.retries, w.timeout_s))
    if not writers:
        return None
    batch = settings.webhook.batch_size if settings.webhook is not None else 1000
    request_log = RequestLog(writers, secrets=config.secrets, queue_size=settings.queue_size,
                             flush_interval_s=settings.flush_interval_s, batch=batch)
    metrics.watch_export("log_lines", lambda: request_log.written, lambda: request_log.dropped,
                         lambda: request_log.failed, lambda: request_log.requeued)
    return request_log


def watch_connections(app: web.Application, gate: ConnectionGate) -> None:
    """Export the listener's connection counts (the listener is built outside the app)."""
    app[APP_KEY].metrics.watch_connections(lambda: gate.open, lambda: gate.refused)


def _guardrail_error(status: int, raw: bytes, headers: Mapping[str, str],
                     deployment: str) -> UpstreamError:
    return UpstreamUnavailable(f"the guardrail webhook answered {status}", deployment=deployment)


_CIRCUIT_LEVEL = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


def _log_transition(upstream: str, before: str, after: str, at: float) -> None:
    log.warning("circuit of %s: %s → %s", upstream, before, after)


async def _startup(app: web.Application) -> None:
    parts = app[APP_KEY]
    await asyncio.to_thread(uploads.sweep)  # what a crashed run left in TMPDIR
    if parts.policy_stack is not None:
        await parts.policy_stack.start()
    if parts.tracer is not None:
        parts.tracer.start()
    if parts.request_log is not None:
        parts.request_log.start()
    if parts.shared_circuits is not None:
        parts.background.append(asyncio.create_task(
            _sync_circuits(parts, parts.config.state.sync_interval_s)))
    if parts.shared_busy is not None:
        parts.background.append(asyncio.create_task(
            _sync_busy(parts, parts.shared_busy, parts.config.state.sync_interval_s)))
    for polled in (parts.batches, parts.message_batches):
        if polled is not None:
            parts.background.append(asyncio.create_task(
                _poll_batches(parts, polled, parts.config.storage.batch_poll_s)))
    if parts.shared_caps is not None:
        parts.background.append(asyncio.create_task(
            _sync_caps(parts, parts.shared_caps, parts.config.state.sync_interval_s)))


async def _sync_circuits(parts: Components, interval_s: float) -> None:
    while not parts.closing:
        await asyncio.sleep(interval_s)
        await parts.breakers.sync()


async def _sync_busy(parts: Components, busy: RedisBusy, interval_s: float) -> None:
    while not parts.closing:
        await asyncio.sleep(interval_s)
        room = parts.gateway.router.room
        room.adopt_others(await busy.exchange(room.local_busy()))


async def _poll_batches(parts: Components, batches: Batches | MessageBatches,
                        interval_s: float) -> None:
    """Batches nobody asks about are settled too (a retrieve settles one sooner)."""
    while not parts.closing:
        await asyncio.sleep(interval_s)
        try:
            await batches.poll()
        except Exception:  # the database is down: the next round tries again
            log.warning("batch poller: this round failed", exc_info=True)


async def _sync_caps(parts: Components, shared: RedisBusy, interval_s: float) -> None:
    """Publish this replica's vendor-share windows and adopt the others' (nothing while no
    cap is configured); a Redis outage leaves each replica its own counts."""
    while not parts.closing:
        await asyncio.sleep(interval_s)
        caps = parts.gateway.router.caps
        if caps.active:
            caps.adopt_others(await shared.exchange(caps.local_counts()))
            caps.shared = shared.healthy


def _labelled(tally: Mapping[tuple[str, str], int]) -> dict[tuple[str, ...], float]:
    return {key: float(n) for key, n in tally.items()}


_STOP_S = 2.0
"""How long shutting down waits for the background loops once they were cancelled."""


async def _cleanup(app: web.Application) -> None:
    parts = app[APP_KEY]
    # A cancellation that lands inside a redis-py command can be swallowed by it; the loops
    # then see ``closing``, and the wait is bounded either way (a teardown once hung here).
    parts.closing = True
    for task in parts.background:
        task.cancel()
    if parts.background:
        await asyncio.wait(parts.background, timeout=_STOP_S)
    if parts.shared_circuits is not None:
        await parts.shared_circuits.aclose()
    if parts.shared_busy is not None:
        await parts.shared_busy.aclose()
    if parts.shared_caps is not None:
        await parts.shared_caps.aclose()
    await parts.upstream.aclose()
    if parts.tools is not None:  # stdio servers' processes stop here
        await parts.tools.aclose()
    if parts.policy_stack is not None:
        await parts.policy_stack.aclose()
    if parts.gateway.cache is not None:
        await parts.gateway.cache.aclose()
    if parts.request_log is not None:
        await parts.request_log.aclose()
    if parts.tracer is not None:  # after the ledger: the last requests' spans are ended
        await parts.tracer.aclose()


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
