"""Least busy across replicas (issue 18): two gateways in this test process share their
in-flight counts through Redis, so one sends its requests away from a deployment the other
keeps busy."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from aiohttp import web

from polyroute.app import APP_KEY, build_app
from polyroute.config import load_config
from polyroute.engine.room import Room
from tests.support.sim import SimServer

HOLD_MS = 2500.0
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    rule = {"fault": "slow_first_token", "model": "held", "params": {"delay_ms": HOLD_MS}}
    with SimServer(rules=[rule]) as server:
        yield server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _serve(config: dict[str, Any], tmp: Path, name: str) -> tuple[web.AppRunner, str]:
    path = tmp / f"{name}.yaml"
    port = _free_port()
    config = {**config, "server": {"port": port},
              "storage": {"sqlite_path": str(tmp / f"{name}.db"), "ledger": False}}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    runner = web.AppRunner(build_app(load_config(str(path))), handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/v1"


@pytest.fixture
async def replicas(
        sim: SimServer, tmp_path: Path) -> AsyncIterator[tuple[str, str, str, str, Room]]:
    run = uuid.uuid4().hex[:8]  # deployment names no other test's gateway uses
    a, b = f"a-{run}", f"b-{run}"
    config = {
        "providers": {"sim": {"base_url": sim.base_url}},
        "state": {"redis_url": "redis://127.0.0.1:6379/13", "sync_interval_s": 0.05},
        "model_groups": {"chat": {"routing": "least_busy", "deployments": [
            {"provider": "sim", "model": "held", "name": a, "tags": {"pool": "a"}},
            {"provider": "sim", "model": "held", "name": b, "tags": {"pool": "b"}}]}},
    }
    first, url1 = await _serve(config, tmp_path, "one")
    second, url2 = await _serve(config, tmp_path, "two")
    try:
        yield url1, url2, a, b, second.app[APP_KEY].gateway.router.room
    finally:
        await first.cleanup()
        await second.cleanup()


async def test_least_busy_counts_the_other_replicas_requests(
        replicas: tuple[str, str, str, str, Room]) -> None:
    url1, url2, a, b, room_two = replicas
    async with (openai.AsyncOpenAI(base_url=url1, api_key="unused", max_retries=0) as one,
                openai.AsyncOpenAI(base_url=url2, api_key="unused", max_retries=0) as two):
        await _scenario(one, two, a, b, room_two)


async def _scenario(one: openai.AsyncOpenAI, two: openai.AsyncOpenAI, a: str, b: str,
                    room_two: Room) -> None:

    async def call(client: openai.AsyncOpenAI, **extra: Any) -> tuple[str, str]:
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=USER, **extra)  # type: ignore[arg-type]
        return raw.headers["x-polyroute-deployment"], raw.headers["x-polyroute-route"]

    # Replica one keeps four requests in flight on deployment a (chosen by tag)...
    held = [asyncio.create_task(call(one, extra_headers={"x-polyroute-tags": "pool=a"}))
            for _ in range(4)]
    try:
        async with asyncio.timeout(HOLD_MS / 1000 - 0.1):  # ...as replica two learns by Redis
            while room_two.busy(a) < 4:  # noqa: ASYNC110 - another replica's view, polled
                await asyncio.sleep(0.01)
        # ...so replica two, whose own counts are all zero, sends its requests to b.
        answers = await asyncio.gather(*(call(two) for _ in range(3)))
        assert Counter(name for name, _ in answers) == {b: 3}, answers
        assert any(f"{a}=4" in reason for _, reason in answers), answers
        assert {name for name, _ in await asyncio.gather(*held)} == {a}
    finally:
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
