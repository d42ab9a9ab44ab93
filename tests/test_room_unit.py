"""The room's readings and the strategies that read it, without sockets: vendors' rate-limit
headers, latency estimates, headroom, and each strategy's order and reason."""

from __future__ import annotations

from collections import Counter
from random import Random

from polyroute.config import Deployment, Endpoint
from polyroute.config.compiled import RoutingKnobs
from polyroute.engine.ratelimit_headers import duration_s, read_quota
from polyroute.engine.room import Room
from polyroute.engine.strategies import Ranked, RoutingContext, cost, least_busy, least_latency
from polyroute.engine.strategies import quota as quota_strategy
from polyroute.model.price import Price

ENDPOINT = Endpoint("v", "openai", "http://127.0.0.1:1/v1", {})


def dep(name: str, **extra: object) -> Deployment:
    return Deployment(name=name, vendor="v", model=name, endpoint=ENDPOINT, **extra)  # type: ignore[arg-type]


def test_openai_reset_durations() -> None:
    assert duration_s("1s") == 1.0
    assert duration_s("6m0s") == 360.0
    assert duration_s("1.5s") == 1.5
    assert duration_s("250ms") == 0.25
    assert duration_s("2") == 2.0
    assert duration_s("soon") is None and duration_s("") is None and duration_s("1s!") is None


def test_openai_azure_and_anthropic_headers_are_read() -> None:
    openai = read_quota({"x-ratelimit-limit-requests": "100",
                         "x-ratelimit-remaining-requests": "25",
                         "x-ratelimit-reset-requests": "30s",
                         "x-ratelimit-remaining-tokens": "1000"}, now=1000.0)
    assert openai is not None and openai.requests is not None
    assert openai.requests.until == 1030.0
    assert list(openai.shares(1001.0, None, 4000)) == [0.25, 0.25]
    assert list(openai.shares(1031.0, None, 4000)) == [0.25]  # requests reset; tokens: 60 s
    azure = read_quota({"x-ratelimit-remaining-requests": "0"}, now=0.0)
    assert azure is not None and list(azure.shares(1.0, None, None)) == [0.0]
    anthropic = read_quota({"anthropic-ratelimit-requests-limit": "50",
                            "anthropic-ratelimit-requests-remaining": "40",
                            "anthropic-ratelimit-requests-reset": "2030-01-01T00:00:00Z"},
                           now=0.0)
    assert anthropic is not None and list(anthropic.shares(1.0, None, None)) == [0.8]
    assert read_quota({"content-type": "application/json"}, now=0.0) is None


def test_headroom_is_the_least_of_headers_and_configured_limits() -> None:
    clock = [1000.0]
    room = Room(wall=lambda: clock[0])
    assert room.headroom("a", None, None) == 1.0
    for _ in range(3):
        room.begin("a", tokens=100)
        room.end("a")
    assert room.headroom("a", 10, None) == 0.7
    assert room.headroom("a", 10, 1000) == 0.7
    assert room.headroom("a", 100, 400) == 0.25
    room.observe_headers("a", {"x-ratelimit-remaining-requests": "1",
                               "x-ratelimit-limit-requests": "20"})
    assert room.headroom("a", 10, None) == 0.05
    clock[0] += 61  # the window and the header's minute have passed
    assert room.headroom("a", 10, None) == 1.0


def test_latency_estimate_is_exponentially_weighted_and_kept_per_kind() -> None:
    room = Room(alpha=0.5)
    room.observe_latency("a", 1.0, stream=False)
    room.observe_latency("a", 3.0, stream=False)
    assert room.latency("a", stream=False) == 2.0
    assert room.latency("a", stream=True) is None
    room.observe_latency("a", 1.0, stream=False, alpha=0.25)
    assert room.latency("a", stream=False) == 1.75


def test_least_latency_explores_at_the_configured_rate() -> None:
    room = Room()
    room.observe_latency("fast", 0.05, stream=False)
    room.observe_latency("slow", 0.50, stream=False)
    ctx = RoutingContext(Random(7), room, RoutingKnobs(explore=0.1))
    firsts = Counter(least_latency.order([dep("slow"), dep("fast")], ctx)[0].name
                     for _ in range(10_000))
    assert 0.04 < firsts["slow"] / 10_000 < 0.06  # half the explorations pick fast anyway
    ranked = least_latency.order([dep("slow"), dep("fast")], RoutingContext(
        Random(1), room, RoutingKnobs(explore=0.0)))
    assert isinstance(ranked, Ranked) and ranked.kind == "fastest"
    assert ranked.reason == "least_latency fastest fast; fast=50ms slow=500ms"


def test_least_latency_measures_the_unmeasured_first_and_keeps_priorities() -> None:
    room = Room()
    room.observe_latency("fast", 0.05, stream=True)
    ctx = RoutingContext(Random(1), room, RoutingKnobs(explore=0.0), stream=True)
    assert least_latency.order([dep("fast"), dep("new")], ctx)[0].name == "new"
    backup = dep("backup", priority=1)
    room.observe_latency("backup", 0.001, stream=True)
    assert least_latency.order([backup, dep("fast")], ctx)[0].name == "fast"


def test_least_busy_orders_by_requests_in_flight_per_weight() -> None:
    room = Room()
    for _ in range(4):
        room.begin("a")
    room.begin("b")
    room.adopt_others({"b": 2})
    ctx = RoutingContext(Random(1), room)
    ranked = least_busy.order([dep("a", weight=2.0), dep("b")], ctx)
    assert [d.name for d in ranked] == ["a", "b"]  # 4/2 < 3/1
    assert room.busy("b") == 3


def test_quota_sheds_a_deployment_at_its_reserve_whatever_its_priority() -> None:
    room = Room()
    room.observe_headers("primary", {"x-ratelimit-remaining-requests": "1",
                                     "x-ratelimit-limit-requests": "100"})
    ctx = RoutingContext(Random(1), room, RoutingKnobs(quota_reserve=0.1))
    ranked = quota_strategy.order([dep("primary"), dep("backup", priority=5)], ctx)
    assert [d.name for d in ranked] == ["backup", "primary"]
    assert isinstance(ranked, Ranked) and ranked.kind == "headroom"
    ranked = quota_strategy.order([dep("primary")], ctx)
    assert isinstance(ranked, Ranked) and ranked.kind == "shed"


def test_quota_shares_in_proportion_to_headroom() -> None:
    room = Room()
    room.observe_headers("half", {"x-ratelimit-remaining-requests": "50",
                                  "x-ratelimit-limit-requests": "100"})
    ctx = RoutingContext(Random(3), room)
    firsts = Counter(quota_strategy.order([dep("half"), dep("full")], ctx)[0].name
                     for _ in range(10_000))
    assert 0.63 < firsts["full"] / 10_000 < 0.70  # 1 / (1 + 0.5)


def test_cost_prefers_the_cheapest_that_fits() -> None:
    cheap = dep("cheap", price=Price(0.1, 0.4), context_window=100)
    dear = dep("dear", price=Price(5, 15))
    unpriced = dep("unpriced")
    ctx = RoutingContext(Random(1), Room(), input_tokens=50, output_tokens=10)
    assert [d.name for d in cost.order([unpriced, dear, cheap], ctx)] == [
        "cheap", "dear", "unpriced"]
    ctx.input_tokens = 500
    assert [d.name for d in cost.order([unpriced, dear, cheap], ctx)] == [
        "dear", "unpriced", "cheap"]
