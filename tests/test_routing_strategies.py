"""Routing strategies order deployments by weight and priority."""

from __future__ import annotations

from collections import Counter
from random import Random

from polyroute.config import Deployment, Endpoint, GatewayConfig
from polyroute.config.compiled import ModelGroup, ServerSettings, StorageSettings
from polyroute.engine.router import Router
from polyroute.engine.strategies import RoutingContext, priority, weighted
from polyroute.errors import ModelNotFound

ENDPOINT = Endpoint("v", "openai", "http://127.0.0.1:1/v1", {})


def dep(name: str, weight: float = 1.0, prio: int = 0) -> Deployment:
    return Deployment(name=name, vendor="v", model=name, endpoint=ENDPOINT, weight=weight,
                      priority=prio)


def test_weighted_first_pick_follows_weights() -> None:
    ctx = RoutingContext(Random(1))
    deps = [dep("a", 1), dep("b", 3)]
    firsts = Counter(weighted.order(deps, ctx)[0].name for _ in range(20_000))
    assert 0.72 < firsts["b"] / 20_000 < 0.78  # expected 0.75


def test_weighted_keeps_every_deployment_for_failover() -> None:
    ctx = RoutingContext(Random(2))
    order = weighted.order([dep("a"), dep("b"), dep("c")], ctx)
    assert sorted(d.name for d in order) == ["a", "b", "c"]


def test_priority_orders_by_priority_then_weight() -> None:
    ctx = RoutingContext(Random(3))
    deps = [dep("backup", prio=1), dep("p1", 1, 0), dep("p2", 9, 0)]
    orders = [priority.order(deps, ctx) for _ in range(5000)]
    assert all(o[-1].name == "backup" for o in orders)
    share = sum(o[0].name == "p2" for o in orders) / 5000
    assert 0.87 < share < 0.93  # expected 0.9


def test_router_resolves_groups_and_open_vendors() -> None:
    group = ModelGroup("chat", "priority", (dep("a"),))
    config = GatewayConfig("test", ServerSettings(), StorageSettings("x"), {"chat": group},
                           {"openai": ENDPOINT})
    router = Router(config, Random(0))
    assert router.route("chat").candidates[0].name == "a"
    route = router.route("openai/gpt-4o-mini")
    assert route.candidates[0].model == "gpt-4o-mini"
    for bad in ("nope", "anthropic/claude"):
        try:
            router.route(bad)
        except ModelNotFound as exc:
            assert exc.status == 404 and "chat" in exc.message
        else:
            raise AssertionError(bad)
