"""'auto' groups through a real gateway: easy prompts go to the cheap model and hard ones to the
strong one under a given knob; the choice is in a header and the ledger; a failing choice
fails over to the next-best."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from polyroute.config import ConfigError, load_config
from tests.conftest import SIM_KEY, sim_provider
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

EASY = "Hi! What is the capital of France?"
HARD = ("Write a Python function that, given a list of intervals, merges all overlapping "
        "intervals and returns them sorted; then prove its time complexity and handle the edge "
        "cases where intervals touch at a point. def merge(intervals):")
STRONG = {"provider": "sim", "model": "strong-model", "name": "strong", "profile": "frontier",
          "price": {"input_per_1m": 10, "output_per_1m": 30}}
CHEAP = {"provider": "sim", "model": "cheap-model", "name": "cheap", "profile": "small",
         "price": {"input_per_1m": 0.15, "output_per_1m": 0.6}}


def auto_group(wtp: float, strong: dict[str, Any] = STRONG) -> dict[str, Any]:
    return {"routing": "auto", "auto": {"willingness_to_pay": wtp},
            "deployments": [strong, CHEAP]}


@pytest.fixture(scope="module")
def gw(sim: SimServer) -> Iterator[GatewayProcess]:
    config = {
        "providers": {"sim": sim_provider(sim)},
        "model_groups": {
            "auto": auto_group(0.02),
            "frugal": auto_group(0.001),
            "auto-flaky": auto_group(0.02, {**STRONG, "model": "strong-model@unavailable",
                                            "name": "strong-down"}),
        },
        "storage": {"flush_interval_s": 0.05},
    }
    with GatewayProcess(config, env={"SIM_KEY": SIM_KEY}) as gateway:
        yield gateway


def ask(gw: GatewayProcess, model: str, prompt: str, rid: str) -> Any:
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": prompt}],
        extra_headers={"x-request-id": rid})


def test_easy_goes_cheap_and_hard_goes_strong(gw: GatewayProcess) -> None:
    easy = ask(gw, "auto", EASY, "auto-easy")
    hard = ask(gw, "auto", HARD, "auto-hard")
    assert easy.headers["x-polyroute-deployment"] == "cheap"
    assert hard.headers["x-polyroute-deployment"] == "strong"
    route = hard.headers["x-polyroute-route"]
    assert route.startswith("strong;") and "cheap:" in route and "strong:" in route
    deadline = time.monotonic() + 5
    rows: list[tuple[str, str]] = []
    while time.monotonic() < deadline and len(rows) < 2:
        with sqlite3.connect(gw.db_path) as conn:
            rows = conn.execute(
                "SELECT client_request_id, route FROM ledger WHERE client_request_id IN "
                "('auto-easy', 'auto-hard') ORDER BY client_request_id").fetchall()
        time.sleep(0.05)
    assert [r[0] for r in rows] == ["auto-easy", "auto-hard"]
    assert rows[1][1] == route


def test_the_knob_moves_the_choice(gw: GatewayProcess) -> None:
    assert ask(gw, "frugal", HARD, "frugal-hard").headers["x-polyroute-deployment"] == "cheap"


def test_a_failing_choice_fails_over_to_the_next_best(gw: GatewayProcess) -> None:
    reply = ask(gw, "auto-flaky", HARD, "flaky-hard")
    assert reply.headers["x-polyroute-attempts"] == "strong-down:upstream_unavailable,cheap:ok"


def test_config_errors(tmp_path: Path) -> None:
    def check(deployment: dict[str, Any]) -> str:
        path = tmp_path / "c.yaml"
        import yaml

        path.write_text(yaml.safe_dump({
            "providers": {"sim": {"base_url": "http://127.0.0.1:9/v1", "auth": "none"}},
            "model_groups": {"g": {"routing": "auto", "deployments": [deployment]}}}))
        with pytest.raises(ConfigError) as info:
            load_config(str(path), {})
        return str(info.value)

    no_price = {"provider": "sim", "model": "some-unknown-model", "profile": "small"}
    assert "price" in check(no_price)
    bad_profile = {**no_price, "profile": "galaxy-brain",
                   "price": {"input_per_1m": 1, "output_per_1m": 1}}
    assert "profile" in check(bad_profile)
