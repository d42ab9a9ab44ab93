"""Run a drill: simulators in place of every provider, a healthy phase, a failing phase."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import aiohttp
from aiohttp import web

from polyroute.app import APP_KEY, build_app
from polyroute.config import Deployment, Endpoint, GatewayConfig, load_config
from polyroute.config.compiled import StateSettings
from polyroute.config.discovery import KNOWN_VENDORS
from polyroute.drill.report import GroupReport, Outcome, summarise
from polyroute.sim.server import RunningSim, start_sim
from polyroute.sim.settings import SimSettings


@dataclass(frozen=True, slots=True)
class Failure:
    provider: str
    fault: str
    params: Mapping[str, float]
    probability: float = 1.0

    @property
    def label(self) -> str:
        extra = "".join(f";{k}={v:g}" for k, v in self.params.items())
        odds = f" (p={self.probability:g})" if self.probability < 1 else ""
        return f"{self.provider}={self.fault}{extra}{odds}"


@dataclass(frozen=True, slots=True)
class DrillResult:
    groups: list[GroupReport]
    upstream_requests: dict[str, int]
    """Per provider: requests its simulator received during the failing run."""


@dataclass(frozen=True, slots=True)
class DrillPlan:
    config_path: str | None
    failures: Sequence[Failure]
    requests: Sequence[dict[str, Any]]
    concurrency: int = 8
    sim_latency_ms: float = 20.0
    tokens_per_second: float = 0.0


class _AnyEnv(Mapping[str, str]):
    """The environment, where every missing variable has a placeholder: a drill talks only to
    simulators, so it needs none of the real keys a config refers to."""

    def __getitem__(self, key: str) -> str:
        return os.environ.get(key) or "drill-placeholder"

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


DRILL_MODEL = "drill"
"""The model id a zero-config drill asks each vendor for (the simulator serves any)."""


def load_for_drill(path: str | None, named_vendors: Iterable[str] = ()) -> GatewayConfig:
    """The config to drill. Without a file: the vendors the environment enables, as
    ``polyroute serve`` would find them, plus any vendor the drill names (``--fail openai=…``,
    ``--models openai/gpt-4o``) even without its key: a drill never calls a real vendor."""
    if path is not None:
        return load_config(path, _AnyEnv())
    env = dict(os.environ)
    known = {v.name: v for v in KNOWN_VENDORS}
    for name in named_vendors:
        vendor = known.get(name)
        if vendor is None:
            continue  # reported later as a provider the drill does not have
        if vendor.key_env and not any(env.get(e) for e in (vendor.key_env,
                                                            *vendor.more_key_envs)):
            env[vendor.key_env] = "drill-placeholder"
        if vendor.base_url is None and not any(env.get(e) for e in vendor.base_url_envs):
            env[vendor.base_url_envs[0]] = "http://127.0.0.1:9"  # replaced by a simulator
        if vendor.region_envs and not any(env.get(e) for e in vendor.region_envs):
            env[vendor.region_envs[0]] = "us-east-1"
    config = load_config(None, env)
    if not config.open_vendors:
        raise ValueError("no vendor found in the environment: set OPENAI_API_KEY (or another "
                         "vendor's key), name one with --fail or --models, or pass --config")
    return config


def default_models(config: GatewayConfig) -> list[str]:
    """Every model group, or without any (zero-config) one '<vendor>/drill' per vendor."""
    if config.groups:
        return sorted(config.groups)
    return [f"{vendor}/{DRILL_MODEL}" for vendor in sorted(config.open_vendors)]


async def run(plan: DrillPlan, config: GatewayConfig) -> DrillResult:
    providers = _providers(config)
    unknown = {f.provider for f in plan.failures} - set(providers)
    if unknown:
        raise ValueError(f"no provider named {', '.join(sorted(unknown))} in the config; "
                         f"it has: {', '.join(sorted(providers))}")
    sims = {name: await start_sim(SimSettings(port=0, latency_ms=plan.sim_latency_ms,
                                              tokens_per_second=plan.tokens_per_second))
            for name in providers}
    runner: web.AppRunner | None = None
    try:
        app = build_app(_on_simulators(config, sims))
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        async with aiohttp.ClientSession() as session:
            baseline = await _phase(session, url, plan)
            await _inject(session, sims, plan.failures)
            breakers = app[APP_KEY].breakers
            mark = len(breakers.history)
            drill = await _phase(session, url, plan)
            history = list(breakers.history)[mark:]
            received = await _received(session, sims)
        models = {str(body["model"]) for body in plan.requests}
        groups = summarise(baseline, drill, _transitions_by_group(config, history, models))
        return DrillResult(groups, received)
    finally:
        if runner is not None:
            await runner.cleanup()
        for sim in sims.values():
            await sim.close()


def _providers(config: GatewayConfig) -> dict[str, Endpoint]:
    found = {d.vendor: d.endpoint for g in config.groups.values() for d in g.deployments}
    found.update(config.open_vendors)
    return found


def _on_simulators(config: GatewayConfig, sims: Mapping[str, RunningSim]) -> GatewayConfig:
    def moved(endpoint: Endpoint) -> Endpoint:
        # OpenAI's base URL ends in /v1; the other protocols add their own path to the root.
        sim = sims[endpoint.vendor]
        url = sim.base_url if endpoint.protocol == "openai" else sim.root_url
        return replace(endpoint, base_url=url,
                       headers=MappingProxyType({}), secrets=())

    def dep(d: Deployment) -> Deployment:
        return replace(d, endpoint=moved(d.endpoint))

    groups = {name: replace(g, deployments=tuple(dep(d) for d in g.deployments))
              for name, g in config.groups.items()}
    vendors = {name: moved(e) for name, e in config.open_vendors.items()}
    return replace(config, groups=MappingProxyType(groups),
                   open_vendors=MappingProxyType(vendors),
                   storage=replace(config.storage, ledger=False),  # drill traffic is not spend
                   state=StateSettings())  # never touch a shared Redis from a drill


async def _received(
    session: aiohttp.ClientSession, sims: Mapping[str, RunningSim]
) -> dict[str, int]:
    """Requests each provider's simulator received in the failing run (its counters were
    reset when the faults were injected): a dead vendor should see only probes."""
    counts = {}
    for provider, sim in sorted(sims.items()):
        async with session.get(sim.root_url + "/_sim/stats") as response:
            counts[provider] = int((await response.json())["requests_total"])
    return counts


async def _inject(session: aiohttp.ClientSession, sims: Mapping[str, RunningSim],
                  failures: Sequence[Failure]) -> None:
    rules: dict[str, list[dict[str, Any]]] = {}
    for f in failures:
        rules.setdefault(f.provider, []).append(
            {"fault": f.fault, "params": dict(f.params), "probability": f.probability})
    for sim in sims.values():
        async with session.post(sim.root_url + "/_sim/reset"):
            pass
    for provider, provider_rules in rules.items():
        async with session.put(sims[provider].root_url + "/_sim/faults",
                               json={"rules": provider_rules}) as response:
            if response.status != 200:
                raise ValueError(f"the simulator refused the fault for {provider}: "
                                 f"{await response.text()}")


async def _phase(session: aiohttp.ClientSession, url: str, plan: DrillPlan) -> list[Outcome]:
    gate = asyncio.Semaphore(plan.concurrency)

    async def one(body: dict[str, Any]) -> Outcome:
        async with gate:
            started = time.perf_counter()
            try:
                async with session.post(url, json=body,
                                        timeout=aiohttp.ClientTimeout(total=120)) as response:
                    payload = await response.read()
                    chain = response.headers.get("x-polyroute-attempts", "")
                    ok = response.status == 200 and (
                        not body.get("stream") or payload.rstrip().endswith(b"data: [DONE]"))
            except (aiohttp.ClientError, TimeoutError):
                ok, chain = False, ""
            return Outcome(str(body["model"]), ok, time.perf_counter() - started,
                           chain.count(",") + 1 if chain else 0)

    return list(await asyncio.gather(*(one(b) for b in plan.requests)))


def _transitions_by_group(
    config: GatewayConfig, history: Sequence[tuple[str, str, str, float]],
    models: Iterable[str] = (),
) -> dict[str, list[str]]:
    """Per group: each upstream's transitions, counted ('openai/gpt-4o: closed→open ×1').
    A '<vendor>/<model>' name outside the config is its own upstream."""
    upstreams = {name: [d.upstream for d in group.deployments]
                 for name, group in config.groups.items()}
    for model in models:
        if model not in upstreams and "/" in model:
            upstreams[model] = [model]
    out: dict[str, list[str]] = {}
    for name, group_upstreams in upstreams.items():
        lines = []
        for upstream in dict.fromkeys(group_upstreams):
            counts: dict[str, int] = {}
            for up, before, after, _ in history:
                if up == upstream:
                    counts[f"{before}→{after}"] = counts.get(f"{before}→{after}", 0) + 1
            if counts:
                lines.append(f"{upstream}: " + ", ".join(f"{k} ×{v}" for k, v in counts.items()))
        out[name] = lines
    return out
