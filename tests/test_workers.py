"""``polyroute serve --workers N`` (issue 12, item 6): N processes on one port under a
supervising parent. Real processes, real sockets, the openai SDK as client, the simulator as
upstream; the ledger checked in SQLite after the gateway stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml

from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess, free_port
from tests.support.policy import MASTER_KEY, chat_body, new_key
from tests.support.sim import SimServer
from tests.test_limits_budget import keyed_config

REDIS_URL = "redis://127.0.0.1:6379/5"
ENV = {"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}


def open_config(sim: SimServer) -> dict[str, Any]:
    return {
        "providers": {"sim": {"base_url": sim.base_url, "api_key": "${SIM_KEY}"}},
        "model_groups": {"chat": {"deployments": [{"provider": "sim", "model": "gpt-4o-mini"}]}},
        "storage": {"flush_interval_s": 0.1},
        "server": {"workers": 2},
    }


def ledger_counts(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(db_path) as db:
        return dict(db.execute("SELECT client_request_id, COUNT(*) FROM ledger "
                               "GROUP BY client_request_id").fetchall())


def worker_pids(gw: GatewayProcess) -> set[int]:
    """The live children of the supervising process, from /proc."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == gw.proc.pid:
                found.add(int(entry))
    return found


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


def stop(gw: GatewayProcess, timeout_s: float = 60.0) -> int:
    gw.proc.send_signal(signal.SIGTERM)
    return gw.proc.wait(timeout_s)


@pytest.mark.timeout(90)
def test_two_workers_serve_the_openai_sdk_and_both_get_traffic() -> None:
    with SimServer(api_key=SIM_KEY, latency_ms=5) as sim, GatewayProcess(
            open_config(sim), ENV) as gw:
        assert len(worker_pids(gw)) == 2
        seen: dict[str, int] = {}
        for i in range(40):  # a client per request: a new connection, hashed to a worker
            with openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0) as client:
                raw = client.chat.completions.with_raw_response.create(
                    model="chat", messages=[{"role": "user", "content": "hi"}],
                    extra_headers={"x-request-id": f"r{i}"})
                assert raw.parse().choices[0].message.content
                pid = raw.headers["x-polyroute-worker"]
                seen[pid] = seen.get(pid, 0) + 1
        assert {int(p) for p in seen} == worker_pids(gw), seen
        assert min(seen.values()) >= 5, f"one worker got almost nothing: {seen}"
        assert stop(gw) == 0
        counts = ledger_counts(gw.db_path)
        assert counts == {f"r{i}": 1 for i in range(40)}
        assert "Traceback" not in gw.log()


@pytest.mark.timeout(120)
async def test_kill_9_of_one_worker_under_load_loses_no_record_and_it_is_restarted() -> None:
    with tempfile.TemporaryDirectory(prefix="polyroute-workers-") as tmp, SimServer(
            api_key=SIM_KEY, latency_ms=15) as sim:
        workdir = Path(tmp)
        config = keyed_config(sim, state={"redis_url": REDIS_URL},
                              server={"workers": 2})
        config["storage"]["flush_interval_s"] = 0.3  # some records flushed, some only spooled
        gw = GatewayProcess(config, ENV, tmp=workdir)
        try:
            key = new_key(gw, rpm=1_000_000)
            answered: dict[str, str] = {}
            failed = 0
            stop_load = asyncio.Event()

            async def client(n: int, session: aiohttp.ClientSession) -> None:
                nonlocal failed
                i = 0
                while not stop_load.is_set():
                    i += 1
                    rid = f"c{n}-{i}"
                    try:
                        async with session.post(
                                f"{gw.base_url}/chat/completions", json=chat_body(),
                                headers={"Authorization": f"Bearer {key}", "x-request-id": rid},
                                timeout=aiohttp.ClientTimeout(total=10)) as r:
                            await r.read()
                            assert r.status == 200, await r.text()
                            answered[rid] = r.headers["x-polyroute-worker"]
                    except (aiohttp.ClientError, TimeoutError):
                        failed += 1  # in flight on the killed worker, or queued on it

            # A connection per request, as many clients behind NAT would: each is hashed to a
            # worker, so the replacement is seen too.
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
            clients = [asyncio.create_task(client(n, session)) for n in range(12)]
            await asyncio.sleep(2.0)
            before = worker_pids(gw)
            victim = int(next(iter(answered.values())))
            assert victim in before
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the parent starts another in its place
                now = worker_pids(gw)
                if len(now) == 2 and victim not in now:
                    break
                await asyncio.sleep(0.1)
            after = worker_pids(gw)
            assert len(after) == 2 and victim not in after, (before, after)
            replacement = (after - before).pop()
            for _ in range(100):  # until the new worker has answered, 20 s at most
                if str(replacement) in set(answered.values()):
                    break
                await asyncio.sleep(0.2)
            stop_load.set()
            await asyncio.wait_for(asyncio.gather(*clients), 20)
            await session.close()
            assert str(replacement) in set(answered.values()), "the new worker got no traffic"
            assert stop(gw) == 0, gw.log()[-5000:]
        finally:
            gw.close()
        assert len(answered) > 100
        counts = ledger_counts(gw.db_path)
        missing = [rid for rid in answered if counts.get(rid) != 1]
        assert not missing, f"{len(missing)} answered requests without exactly one record"
        assert all(n == 1 for n in counts.values()), "a record was duplicated"
        assert len(counts) - len(answered) <= 12  # at most the requests in flight at the kill
        assert "adopting 1 spool segment" in gw.log_path.read_text()
        assert not list((workdir / "spool").glob("*.seg")), "segments left behind"


@pytest.mark.timeout(90)
async def test_sigterm_lets_requests_in_flight_finish_then_every_worker_exits() -> None:
    with SimServer(api_key=SIM_KEY, latency_ms=2500) as sim, GatewayProcess(
            open_config(sim), ENV) as gw:
        pids = worker_pids(gw)
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True)) as session:

            async def call(i: int) -> tuple[int, str]:
                async with session.post(f"{gw.base_url}/chat/completions", json=chat_body(),
                                        headers={"x-request-id": f"d{i}"},
                                        timeout=aiohttp.ClientTimeout(total=30)) as r:
                    await r.read()
                    return r.status, r.headers.get("x-polyroute-worker", "")

            calls = [asyncio.create_task(call(i)) for i in range(10)]
            await asyncio.sleep(1.0)  # all ten are waiting on the upstream
            gw.proc.send_signal(signal.SIGTERM)
            results = await asyncio.gather(*calls)
        assert [status for status, _ in results] == [200] * 10
        assert await asyncio.to_thread(gw.proc.wait, 30) == 0
        assert not alive(pids)
        assert ledger_counts(gw.db_path) == {f"d{i}": 1 for i in range(10)}
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", gw.port), 2):
            pass


def run_serve(config: dict[str, Any], tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config.setdefault("storage", {})["sqlite_path"] = str(tmp / "polyroute.db")
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "polyroute", "serve", "--config", str(path), "--port",
         str(free_port()), *args], env={**os.environ, **ENV, "XDG_DATA_HOME": str(tmp)},
        capture_output=True, text=True, timeout=60, check=False)


def test_keys_without_redis_refuse_more_than_one_worker(tmp_path: Path) -> None:
    with SimServer(api_key=SIM_KEY) as sim:
        done = run_serve(keyed_config(sim), tmp_path, "--workers", "2")
    assert done.returncode == 2
    assert "--workers 2 needs state.redis_url" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.timeout(60)
def test_a_key_created_while_open_workers_run_stops_them_all(tmp_path: Path) -> None:
    with SimServer(api_key=SIM_KEY) as sim, GatewayProcess(
            open_config(sim), ENV, tmp=tmp_path) as gw:
        pids = worker_pids(gw)
        created = subprocess.run(
            [sys.executable, "-m", "polyroute", "keys", "create", "--name", "late",
             "--config", str(gw.config_path)],
            env={**os.environ, **ENV, "XDG_DATA_HOME": str(tmp_path / "data")},
            capture_output=True, text=True, timeout=30, check=False)
        assert created.returncode == 0, created.stderr
        assert gw.proc.wait(30) == 2
        assert not alive(pids)
        assert "needs state.redis_url when client keys are in use" in gw.log()


def test_a_port_in_use_is_one_line_even_if_its_holder_has_workers(tmp_path: Path) -> None:
    with SimServer(api_key=SIM_KEY) as sim, GatewayProcess(open_config(sim), ENV) as gw:
        config = open_config(sim)
        config["storage"]["spool_dir"] = str(tmp_path / "spool")
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        done = subprocess.run(
            [sys.executable, "-m", "polyroute", "serve", "--config", str(path), "--port",
             str(gw.port)], env={**os.environ, **ENV, "XDG_DATA_HOME": str(tmp_path)},
            capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{gw.port}" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_workers_flag_is_checked() -> None:
    done = subprocess.run([sys.executable, "-m", "polyroute", "serve", "--workers", "0"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "from 1 to 256" in done.stderr


def test_a_segment_being_created_is_never_adopted_and_a_dead_ones_is_removed(
        tmp_path: Path) -> None:
    import fcntl

    from polyroute.storage.spool import Spool

    creating = tmp_path / ".ledger-00000000000000000001-1.seg.new"
    creating.write_bytes(b"")
    held = os.open(creating, os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a sibling worker, mid-creation
    first = Spool(str(tmp_path))
    first.open()
    assert creating.exists() and first.adopted == 0
    os.close(held)  # that worker died before naming its segment
    second = Spool(str(tmp_path))
    second.open()
    assert not creating.exists() and second.adopted == 0  # first's live segment is locked
    first.append(b'{"a":1}\n')
    assert [p.name.startswith("ledger-") for p in tmp_path.iterdir()] == [True, True]
    first.close()
    second.close()
