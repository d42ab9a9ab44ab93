"""The web console: static files at ``/ui`` (shipped in the package, no build step, nothing
from the internet) and the admin API reads only it needs (recent requests, live figures,
deployments, vendors' share). The reads sit behind the admin API's own key check; the
static files are public (they hold no data: the page asks for the admin key).

Nothing here touches the request path: every figure is computed when a console asks for it,
from the ledger, the circuit breakers and the metrics' counters."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from polyroute.config.compiled import GatewayConfig
from polyroute.engine.circuit import Breakers
from polyroute.errors import InvalidRequest
from polyroute.observability.metrics import Histogram, Metrics
from polyroute.policy.console import ConsoleService
from polyroute.surface.admin.routes import actor_of
from polyroute.surface.admin.timespec import parse_time

STATIC = Path(__file__).parent / "static"
_encode = msgspec.json.Encoder().encode
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
          ".svg": "image/svg+xml", ".json": "application/json"}
Handler = Callable[[web.Request], Awaitable[web.Response]]
# Only the console's own origin may run scripts or connect; no inline script, no frames.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


class ConsoleRoutes:
    def __init__(self, service: ConsoleService, config: GatewayConfig, breakers: Breakers,
                 metrics: Metrics, clock: Callable[[], float] = time.time) -> None:
        self._service = service
        self._config = config
        self._breakers = breakers
        self._metrics = metrics
        self._clock = clock
        self._files = {p.name: p for p in STATIC.iterdir() if p.suffix in _TYPES}

    def api(self) -> list[tuple[str, str, Handler, bool]]:
        """The reads, for ``AdminRoutes.add_routes`` (which checks the admin key and the
        role): requests and live figures are a team admin's too, limited to its teams; the
        deployments and the vendors are the whole gateway's (admins and auditors)."""
        return [("GET", "/admin/requests", self.requests, True),
                ("GET", "/admin/live", self.live, True),
                ("GET", "/admin/deployments", self.deployments, False),
                ("GET", "/admin/vendors", self.vendors, False)]

    def add_static(self, app: web.Application) -> None:
        app.router.add_get("/ui", self.index)
        app.router.add_get("/ui/", self.index)
        app.router.add_get("/ui/{name}", self.file)

    # -- static files ---------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        return self._send("index.html")

    async def file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._files:
            raise web.HTTPNotFound()
        return self._send(name)

    def _send(self, name: str) -> web.Response:
        path = self._files[name]
        return web.Response(body=path.read_bytes(), content_type=_TYPES[path.suffix],
                            headers={"Content-Security-Policy": _CSP,
                                     "X-Content-Type-Options": "nosniff",
                                     "Referrer-Policy": "no-referrer",
                                     "Cache-Control": "no-cache"})

    # -- reads ----------------------------------------------------------------------------
    async def requests(self, request: web.Request) -> web.Response:
        q = request.query
        since, until = _span(q, "1d")
        filters = {k: v for k, v in q.items()
                   if k not in ("since", "until", "limit") and v != ""}
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            raise InvalidRequest("limit must be a whole number", param="limit") from None
        actor = actor_of(request)
        teams = None
        if actor.team_scoped:
            if "team" in filters:
                actor.check_team(filters["team"], "read the requests")
            teams = actor.teams
        rows = await self._service.requests(since, until, filters, limit, teams)
        return _json({"since": since, "until": until, "data": rows})

    async def live(self, request: web.Request) -> web.Response:
        try:
            window = float(request.query.get("window", "60"))
        except ValueError:
            raise InvalidRequest("window is seconds", param="window") from None
        if not 1 <= window <= 86_400:
            raise InvalidRequest("window is 1 to 86400 seconds", param="window")
        actor = actor_of(request)
        return _json(await self._service.live(window, actor.teams if actor.team_scoped
                                              else None))

    async def vendors(self, request: web.Request) -> web.Response:
        since, until = _span(request.query, "1d")
        try:
            bucket = float(request.query.get("bucket", "3600"))
        except ValueError:
            raise InvalidRequest("bucket is seconds", param="bucket") from None
        return _json(await self._service.vendors(since, until, bucket))

    async def deployments(self, request: web.Request) -> web.Response:
        return _json({"data": self.deployment_rows()})

    def deployment_rows(self) -> list[dict[str, Any]]:
        """Each configured deployment's circuit, transitions and attempts since start."""
        now, mono = self._clock(), time.monotonic()
        states = self._breakers.states()
        history: dict[str, list[dict[str, Any]]] = {}
        for upstream, before, after, at in self._breakers.history:
            history.setdefault(upstream, []).append(
                {"from": before, "to": after, "at": now - (mono - at)})
        outcomes: dict[str, dict[str, float]] = {}
        for (_vendor, dep, outcome), n in self._metrics.attempts.values.items():
            outcomes.setdefault(dep, {})[outcome] = outcomes.get(dep, {}).get(outcome, 0) + n
        ok_total = sum(o.get("ok", 0) for o in outcomes.values()) or 1
        rows = []
        for group in self._config.groups.values():
            for d in group.deployments:
                seen = outcomes.get(d.name, {})
                transitions = history.get(d.upstream, [])
                probes = [t["at"] for t in transitions if t["to"] == "half_open"]
                latency = _latency(self._metrics.attempt_duration, d.name)
                rows.append({
                    "name": d.name, "group": group.name, "vendor": d.vendor, "model": d.model,
                    "circuit": states.get(d.upstream, "closed"),
                    "transitions": transitions[-20:], "last_probe": probes[-1] if probes else None,
                    "attempts": int(sum(seen.values())),
                    "errors": {k: int(v) for k, v in seen.items() if k != "ok"},
                    "share": seen.get("ok", 0) / ok_total,
                    "latency_mean_ms": latency})
        return rows


def _latency(histogram: Histogram, deployment: str) -> float | None:
    count = total = 0.0
    for labels, slots in histogram.values.items():
        if labels[1] == deployment:
            count += sum(slots[:-1])
            total += slots[-1]
    return total / count * 1000 if count else None


def _span(q: Any, default_since: str) -> tuple[float, float]:
    try:
        since = parse_time(q.get("since", default_since))
        until = parse_time(q["until"]) if q.get("until") else time.time() + 1
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="since") from None
    return since, until


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encode(value), status=status, content_type="application/json")
