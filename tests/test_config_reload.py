"""Config reload without a restart (issue 18, item 3): SIGHUP and ``polyroute reload``; a bad
file changes nothing and is reported in one line; a reload under load loses no request and
changes routing within a second; what is known of unchanged deployments is kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from polyroute.app import APP_KEY, build_app
from polyroute.config import load_config
from polyroute.config.compiled import Circuit
from polyroute.errors import UpstreamUnavailable
from polyroute.reloading import Reloader
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(latency_ms=5) as server:
        yield server


def _config(sim: SimServer, deployments: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "providers": {"sim": {"base_url": sim.base_url}},
        "model_groups": {"chat": {"deployments": [
            {"provider": "sim", "model": f"{name}-model", "name": name}
            for name in deployments]}},
        **extra,
    }


def _rewrite(gw: GatewayProcess, config: dict[str, Any]) -> None:
    gw.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")


def _served_by(client: openai.OpenAI) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=USER)  # type: ignore[arg-type]
    return raw.headers["x-polyroute-deployment"]


def _wait_for_log(gw: GatewayProcess, text: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = gw.log()
        if text in log:
            return log
        time.sleep(0.02)
    raise AssertionError(f"{text!r} not in the log:\n{gw.log()[-3000:]}")


def test_a_reload_under_load_loses_no_request_and_reroutes_within_a_second(
        sim: SimServer, tmp_path: Path) -> None:
    config = _config(sim, ["old"], storage={"sqlite_path": str(tmp_path / "db.sqlite")})
    with GatewayProcess(config, tmp=tmp_path) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        served: list[tuple[float, str]] = []
        failures: list[BaseException] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                try:
                    served.append((time.monotonic(), _served_by(client)))
                except BaseException as exc:
                    failures.append(exc)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 15
        while len(served) < 8 and not failures and time.monotonic() < deadline:
            time.sleep(0.05)  # under load on the old file first
        _rewrite(gw, {**config, **_config(sim, ["new"])})
        signalled = time.monotonic()
        os.kill(gw.proc.pid, signal.SIGHUP)
        time.sleep(1.5)
        stop.set()
        for thread in threads:
            thread.join()
        assert not failures, failures[:3]
        assert gw.proc.poll() is None
        first_new = min(t for t, name in served if name == "new")
        print(f"first request served by the new file {first_new - signalled:.3f} s after "
              f"SIGHUP; {len(served)} requests, none failed")
        assert first_new - signalled < 1.0
        # every request that started a moment after the reload is routed by the new file
        assert {name for t, name in served if t > signalled + 1.0} == {"new"}
        assert any(name == "old" for _, name in served)
        assert "config reloaded" in gw.log()


def test_a_bad_file_changes_nothing_and_is_reported_in_one_line(
        sim: SimServer, tmp_path: Path) -> None:
    config = _config(sim, ["kept"], storage={"sqlite_path": str(tmp_path / "db.sqlite")})
    with GatewayProcess(config, tmp=tmp_path) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        bad = _config(sim, ["other"])
        bad["model_groups"]["chat"]["deployments"][0]["wieght"] = 2  # a typo
        _rewrite(gw, bad)
        os.kill(gw.proc.pid, signal.SIGHUP)
        log = _wait_for_log(gw, "reload refused")
        line = next(line for line in log.splitlines() if "reload refused" in line)
        assert "nothing changed" in line and "wieght" in line and str(gw.config_path) in line
        assert {_served_by(client) for _ in range(3)} == {"kept"}

        # the CLI checks the file first: a bad one is not sent at all
        cli = [sys.executable, "-m", "polyroute", "reload", "--config", str(gw.config_path),
               "--pid", str(gw.proc.pid)]
        refused = subprocess.run(cli, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2
        assert "config error" in refused.stderr and "wieght" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1

        _rewrite(gw, _config(sim, ["other"]))
        done = subprocess.run(cli, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        _wait_for_log(gw, "config reloaded")
        assert {_served_by(client) for _ in range(3)} == {"other"}


def test_watch_config_reloads_when_the_file_changes(sim: SimServer, tmp_path: Path) -> None:
    config = _config(sim, ["first"], storage={"sqlite_path": str(tmp_path / "db.sqlite")})
    with GatewayProcess(config, tmp=tmp_path, extra_args=("--watch-config",)) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        assert _served_by(client) == "first"
        bad = _config(sim, ["second"])
        bad["model_groups"]["chat"]["routing"] = "fastest"
        _rewrite(gw, bad)
        _wait_for_log(gw, "reload refused")
        assert _served_by(client) == "first"
        _rewrite(gw, {**config, **_config(sim, ["second"])})
        _wait_for_log(gw, "config reloaded")
        assert _served_by(client) == "second"


def test_workers_reload_on_the_parents_sighup(sim: SimServer, tmp_path: Path) -> None:
    config = _config(sim, ["before"], storage={"sqlite_path": str(tmp_path / "db.sqlite")},
                     server={"workers": 2})
    with GatewayProcess(config, tmp=tmp_path) as gw:
        _rewrite(gw, {**config, **_config(sim, ["after"])})
        os.kill(gw.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while gw.log().count("config reloaded") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gw.log().count("config reloaded") == 2
        assert gw.proc.poll() is None  # SIGHUP no longer stops the gateway
        for _ in range(8):  # a new connection each time: the kernel spreads them
            with openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0) as c:
                assert _served_by(c) == "after"


def test_circuits_and_what_was_learnt_of_kept_deployments_survive(
        sim: SimServer, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    base = {"storage": {"sqlite_path": str(tmp_path / "db.sqlite")}}
    path.write_text(yaml.safe_dump({**base, **_config(sim, ["stays", "goes"])}))
    app = build_app(load_config(str(path)))
    parts = app[APP_KEY]
    room = parts.gateway.router.room
    room.observe_latency("stays", 0.2, stream=False)
    room.observe_latency("goes", 0.3, stream=False)
    breakers = parts.breakers
    breakers.failure("sim/stays-model", UpstreamUnavailable("down"),
                     Circuit(failures=1, request_volume=1))
    assert breakers.state("sim/stays-model") == "open"
    old_router = parts.gateway.router

    path.write_text(yaml.safe_dump({**base, **_config(sim, ["stays", "arrives"])}))
    assert Reloader(app, str(path)).reload()
    assert parts.gateway.router is not old_router
    assert parts.gateway.router.room is room
    assert room.latency("stays", stream=False) == pytest.approx(0.2)
    assert room.latency("goes", stream=False) is None
    assert breakers.state("sim/stays-model") == "open"
    assert [d.name for d in parts.config.groups["chat"].deployments] == ["stays", "arrives"]
