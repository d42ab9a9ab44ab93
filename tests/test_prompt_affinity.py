"""Prompt-cache-aware routing (issue 15, item 2): the simulator reports cached prompt tokens
as OpenAI does, and a weighted group sends a long shared prefix back to the deployment that
had it, while that deployment is healthy and within its share."""

from __future__ import annotations

from collections import Counter
from random import Random

import openai

from polyroute.engine.affinity import PrefixAffinity
from polyroute.engine.strategies import RoutingContext
from polyroute.engine.strategies.weighted import order
from polyroute.model.chat import ChatRequest, Message
from polyroute.model.upstream import Deployment, Endpoint
from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

LONG = "clause " * 1200  # ~1,200 simulated tokens, 8,400 characters


def _deployments(n: int = 3) -> list[Deployment]:
    endpoint = Endpoint("sim", "openai", "http://127.0.0.1:1", {})
    return [Deployment(f"d{i}", "sim", f"m{i}", endpoint) for i in range(n)]


def _ask(doc: str, question: str) -> ChatRequest:
    return ChatRequest(messages=[Message("system", doc), Message("user", question)])


def test_a_shared_prefix_sticks_to_one_deployment_within_its_share() -> None:
    deps = _deployments()
    affinity = PrefixAffinity(lambda upstream: True)
    ctx = RoutingContext(Random(7))
    firsts = Counter()
    docs = [f"document {i} " + LONG for i in range(6)]
    chosen_for: dict[int, set[str]] = {i: set() for i in range(6)}
    for n in range(600):
        doc = n % 6
        ordered = affinity.steer("g", order(deps, ctx), _ask(docs[doc], f"q{n}"))
        chosen_for[doc].add(ordered[0].name)
        firsts[ordered[0].name] += 1
    # Six documents over three deployments: each document stays on very few deployments,
    # where plain weighted routing spreads each over all three.
    assert sum(len(names) for names in chosen_for.values()) <= 9
    assert affinity.steered > 0
    for name in ("d0", "d1", "d2"):  # and no deployment is pushed past 1.5x its share
        assert firsts[name] / 600 <= 0.5 + 0.05


def test_short_prompts_and_unhealthy_deployments_are_left_to_the_weights() -> None:
    deps = _deployments()
    healthy = {"sim/m0": True, "sim/m1": True, "sim/m2": True}
    affinity = PrefixAffinity(lambda upstream: healthy[upstream])
    first = affinity.steer("g", list(deps), _ask(LONG, "first"))[0]
    assert first.name == "d0"
    rotated = [deps[1], deps[2], deps[0]]
    assert affinity.steer("g", list(rotated), _ask(LONG, "second"))[0].name == "d0"
    healthy["sim/m0"] = False
    assert affinity.steer("g", list(rotated), _ask(LONG, "third"))[0].name == "d1"
    # The prefix now follows d1, where it went.
    assert affinity.steer("g", [deps[2], deps[0], deps[1]],
                          _ask(LONG, "fourth"))[0].name == "d1"
    short = _ask("be brief", "hello")
    assert affinity.steer("g", list(rotated), short)[0].name == "d1"
    assert affinity.steer("g", [deps[2], deps[0], deps[1]], short)[0].name == "d2"


def test_the_sim_reports_cached_tokens_and_affinity_earns_them(sim: SimServer) -> None:
    config = {
        "providers": {"sim": {"base_url": sim.base_url, "api_key": "${SIM_KEY}"}},
        "model_groups": {"docs": {"routing": "weighted", "deployments": [
            {"provider": "sim", "model": f"affinity-{i}", "name": f"d{i}"}
            for i in range(3)]}},
    }
    with GatewayProcess(config, env={"SIM_KEY": SIM_KEY}) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
        cached = []
        models = set()
        for i in range(6):
            answer = client.chat.completions.create(
                model="docs", messages=[{"role": "system", "content": LONG},
                                        {"role": "user", "content": f"question {i}"}])
            assert answer.usage is not None and answer.usage.prompt_tokens_details is not None
            cached.append(answer.usage.prompt_tokens_details.cached_tokens)
            models.add(answer.model)
        assert cached[0] == 0, "a cold cache reads nothing"
        assert all(c and c >= 1024 for c in cached[1:]), cached
        assert len(models) == 1, "every request went where the prefix was"
