"""``polyroute drill --lose VENDOR --replay SINCE`` (issue 14, item 5): the *shape* of the
traffic the ledger recorded — model, endpoint, stream or not, the capabilities used, token
sizes, arrival times; no bodies, polyroute stores none — replayed against simulators, once
healthy and once with the vendor gone, and reported per model group and team: served share,
latency change, cost change (price catalog), quality-tier change (the deployments' router
profiles), broken capabilities, and an exit-readiness score (docs/independence.md)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from polyroute.app import build_app
from polyroute.config import Deployment, GatewayConfig
from polyroute.drill.report import percentile
from polyroute.drill.run import Failure, _inject, _on_simulators, _providers
from polyroute.independence.topology import features_of
from polyroute.model.usage import Usage
from polyroute.pricing.cost import cost_usd
from polyroute.sim.server import start_sim
from polyroute.sim.settings import DEFAULT_MODELS, SimSettings
from polyroute.storage.usage import ShapeRow

TIER_RANK = {"frontier": 5, "strong": 4, "mid": 3, "weak": 2, "small": 1}
"""A deployment's quality tier, from its router ``profile`` (docs/router.md): higher is
better. A profile naming a trained model, or none, has no tier and is left out of the mean."""

_PROMPT_CAP = 2_000
_OUTPUT_CAP = 256
"""A replayed request asks for at most this many prompt words and output tokens: the shape
is kept, the simulators' work bounded (cost is computed from the *recorded* sizes)."""

_PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
          "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    lose: str
    """The provider (vendor) that is gone."""
    shapes: Sequence[ShapeRow]
    concurrency: int = 16
    span_s: float = 10.0
    """The recorded arrival times are kept, compressed to last at most this long."""
    sim_latency_ms: float = 20.0


@dataclass(slots=True)
class Replayed:
    shape: ShapeRow
    ok: bool
    latency_ms: float
    deployment: str | None


class ScopeReplay(msgspec.Struct):
    scope: str
    """group or team."""
    name: str
    requests: int
    served: int
    """Answered, by a deployment that offers every capability the request used."""
    degraded: int
    """Answered, by a deployment that lacks a capability the request used (in reality it
    would fail or answer worse)."""
    failed: int
    served_share: float
    p50_ms_before: float
    p50_ms_after: float
    latency_change: float
    """p50 after / before − 1, over the simulators."""
    cost_before_usd: float
    cost_after_usd: float
    cost_change: float
    """Over the requests answered with the vendor gone, at the recorded token sizes: the
    recorded deployment's price against the price of the one that answered instead."""
    tier_before: float | None
    tier_after: float | None
    broken: dict[str, int]
    """Capability → replayed requests that used it and lost it ('equivalence': answered by a
    deployment declared ``equivalent: false``)."""
    readiness: int
    """0–100, docs/independence.md."""


class ReplayReport(msgspec.Struct):
    lost: str
    requests: int
    skipped: int
    """Recorded requests not replayed (embeddings)."""
    scopes: list[ScopeReplay]


@dataclass(slots=True)
class _Sums:
    replayed: list[tuple[Replayed, Replayed]] = field(default_factory=list)


async def replay(plan: ReplayPlan, config: GatewayConfig) -> ReplayReport:
    providers = _providers(config)
    if plan.lose not in providers:
        raise ValueError(f"no provider named {plan.lose} in the config; it has: "
                         f"{', '.join(sorted(providers))}")
    # Chat and Responses requests are replayed as chat completions; embeddings are not.
    chat = [s for s in plan.shapes if s.endpoint != "embeddings"]
    # Each simulator knows the models its provider's deployments name (Anthropic's and
    # Gemini's refuse a model they do not list).
    served = {name: sorted({d.model for g in config.groups.values() for d in g.deployments
                            if d.vendor == name} | set(DEFAULT_MODELS)) for name in providers}
    sims = {name: await start_sim(SimSettings(port=0, latency_ms=plan.sim_latency_ms,
                                              models=served[name]))
            for name in providers}
    runner: web.AppRunner | None = None
    try:
        app = build_app(_on_simulators(config, sims))
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions"
        async with aiohttp.ClientSession() as session:
            before = await _phase(session, url, chat, plan)
            await _inject(session, sims, [Failure(plan.lose, "unavailable", {})])
            after = await _phase(session, url, chat, plan)
    finally:
        if runner is not None:
            await runner.cleanup()
        for sim in sims.values():
            await sim.close()
    deployments = {d.name: d for g in config.groups.values() for d in g.deployments}
    return ReplayReport(plan.lose, len(chat), len(plan.shapes) - len(chat),
                        summarise(list(zip(before, after, strict=True)), deployments))


def summarise(pairs: Sequence[tuple[Replayed, Replayed]],
              deployments: Mapping[str, Deployment]) -> list[ScopeReplay]:
    scopes: dict[tuple[str, str], list[tuple[Replayed, Replayed]]] = defaultdict(list)
    for pair in pairs:
        shape = pair[0].shape
        scopes[("group", shape.model_group or shape.requested_model)].append(pair)
        if shape.team is not None:
            scopes[("team", shape.team)].append(pair)
    return [_scope(scope, name, items, deployments)
            for (scope, name), items in sorted(scopes.items())]


def _scope(scope: str, name: str, pairs: Sequence[tuple[Replayed, Replayed]],
           deployments: Mapping[str, Deployment]) -> ScopeReplay:
    served = degraded = 0
    broken: dict[str, int] = defaultdict(int)
    cost_before = cost_after = 0.0
    tiers_before: list[int] = []
    tiers_after: list[int] = []
    for _, after in pairs:
        if not after.ok:
            continue
        used = features_of(after.shape.features)
        target = deployments.get(after.deployment or "")
        lacking = [f for f in used if target is None
                   or target.capabilities.offers(f) is not True]
        if target is not None and not target.equivalent:
            lacking.append("equivalence")  # answered by a deployment declared a different model
        if lacking:
            degraded += 1
            for f in lacking:
                broken[f] += 1
        else:
            served += 1
        recorded = deployments.get(after.shape.deployment or "")
        if recorded is not None:  # the baseline is where the traffic really went
            usage = Usage(prompt_tokens=after.shape.prompt_tokens,
                          completion_tokens=after.shape.completion_tokens)
            cost_before += _cost(recorded, usage)
            cost_after += _cost(target, usage)
            for tiers, dep in ((tiers_before, recorded), (tiers_after, target)):
                rank = TIER_RANK.get((dep.profile or "") if dep else "")
                if rank is not None:
                    tiers.append(rank)
    total = len(pairs)
    p50_before = percentile([b.latency_ms for b, _ in pairs if b.ok], 0.5)
    p50_after = percentile([a.latency_ms for _, a in pairs if a.ok], 0.5)
    latency_change = p50_after / p50_before - 1 if p50_before > 0 and p50_after > 0 else 0.0
    cost_change = cost_after / cost_before - 1 if cost_before > 0 else 0.0
    tier_before = sum(tiers_before) / len(tiers_before) if tiers_before else None
    tier_after = sum(tiers_after) / len(tiers_after) if tiers_after else None
    share = served / total if total else 1.0
    return ScopeReplay(
        scope=scope, name=name, requests=total, served=served, degraded=degraded,
        failed=total - served - degraded, served_share=share, p50_ms_before=p50_before,
        p50_ms_after=p50_after, latency_change=latency_change, cost_before_usd=cost_before,
        cost_after_usd=cost_after, cost_change=cost_change, tier_before=tier_before,
        tier_after=tier_after, broken=dict(sorted(broken.items())),
        readiness=readiness(share, cost_change, latency_change, tier_before, tier_after))


def readiness(served_share: float, cost_change: float, latency_change: float,
              tier_before: float | None, tier_after: float | None) -> int:
    """100 × the share served whole, less 10 points for each of: cost up more than 25 %,
    p50 latency up more than 50 %, a lower mean quality tier; never below 0."""
    score = 100 * served_share
    score -= 10 * (cost_change > 0.25)
    score -= 10 * (latency_change > 0.5)
    score -= 10 * (tier_before is not None and tier_after is not None
                   and tier_after < tier_before)
    return max(0, round(score))


def _cost(dep: Deployment | None, usage: Usage) -> float:
    return cost_usd(dep.price, usage) if dep is not None and dep.price is not None else 0.0


def body_of(shape: ShapeRow) -> dict[str, Any]:
    """A request of the recorded shape: as many prompt words as it had prompt tokens (capped),
    its output size, stream or not, and a token use of each capability it used."""
    used = features_of(shape.features)
    text = " ".join(["lorem"] * max(1, min(shape.prompt_tokens, _PROMPT_CAP)))
    content: str | list[dict[str, Any]] = text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if "vision" in used:
        parts.append({"type": "image_url", "image_url": {"url": _PIXEL}})
    if "audio" in used:
        parts.append({"type": "input_audio", "input_audio": {"data": "UklGRg==",
                                                             "format": "wav"}})
    if len(parts) > 1:
        content = parts
    body: dict[str, Any] = {
        "model": shape.requested_model, "stream": shape.stream,
        "max_tokens": max(1, min(shape.completion_tokens, _OUTPUT_CAP)),
        "messages": [{"role": "user", "content": content}]}
    if "tools" in used:
        body["tools"] = [{"type": "function", "function": {
            "name": "lookup", "description": "replayed tool",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
        if "parallel_tool_calls" in used:
            body["parallel_tool_calls"] = True
    if "json_schema" in used:
        body["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "answer", "strict": True, "schema": {
                "type": "object", "properties": {"a": {"type": "string"}},
                "required": ["a"], "additionalProperties": False}}}
    return body


async def _phase(session: aiohttp.ClientSession, url: str, shapes: Sequence[ShapeRow],
                 plan: ReplayPlan) -> list[Replayed]:
    if not shapes:
        return []
    first = shapes[0].ts
    span = shapes[-1].ts - first
    scale = min(1.0, plan.span_s / span) if span > 0 else 0.0
    gate = asyncio.Semaphore(plan.concurrency)
    start = time.monotonic()

    async def one(shape: ShapeRow) -> Replayed:
        await asyncio.sleep(max(0.0, start + (shape.ts - first) * scale - time.monotonic()))
        async with gate:
            began = time.perf_counter()
            try:
                async with session.post(url, json=body_of(shape),
                                        timeout=aiohttp.ClientTimeout(total=60)) as response:
                    payload = await response.read()
                    ok = response.status == 200 and (
                        not shape.stream or payload.rstrip().endswith(b"data: [DONE]"))
                    deployment = response.headers.get("x-polyroute-deployment")
            except (aiohttp.ClientError, TimeoutError):
                ok, deployment = False, None
            return Replayed(shape, ok, (time.perf_counter() - began) * 1000, deployment)

    return list(await asyncio.gather(*(one(s) for s in shapes)))


def render(report: ReplayReport) -> str:
    lines = [f"polyroute drill — losing {report.lost}: {report.requests} recorded requests "
             f"replayed" + (f" ({report.skipped} embeddings skipped)" if report.skipped else ""),
             ""]
    rows = [("scope", "served", "degraded", "failed", "p50 change", "cost change",
             "tier", "broken capabilities", "readiness")]
    for s in report.scopes:
        tier = ("-" if s.tier_before is None or s.tier_after is None
                else f"{s.tier_before:.1f}→{s.tier_after:.1f}")
        rows.append((f"{s.scope} {s.name}", f"{s.served_share:.0%} ({s.served}/{s.requests})",
                     str(s.degraded), str(s.failed), f"{s.latency_change:+.0%}",
                     f"{s.cost_change:+.0%}", tier,
                     ", ".join(f"{k} ×{v}" for k, v in s.broken.items()) or "-",
                     str(s.readiness)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
