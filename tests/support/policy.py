"""Helpers for the keys/limits/budgets/ledger tests: the admin API over urllib, a private
PostgreSQL cluster and a private Redis (so a test may stop them without touching the
machine's shared ones), and a concurrent chat client."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from glob import glob
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.gateway import GatewayProcess, free_port

MASTER_KEY = "pr-master-7b1d9e40c2f35a86"
PROMPT = [{"role": "user", "content": "Say hello."}]

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def admin(gw: GatewayProcess, method: str, path: str, body: Any = None,
          key: str = MASTER_KEY) -> tuple[int, Any]:
    request = urllib.request.Request(
        gw.root_url + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with _OPENER.open(request, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def ok(result: tuple[int, Any]) -> Any:
    status, body = result
    assert status in (200, 201), body
    return body


def new_key(gw: GatewayProcess, **settings: Any) -> str:
    token: str = ok(admin(gw, "POST", "/admin/keys", settings))["key"]
    return token


def chat_body(model: str = "chat", max_tokens: int = 30) -> dict[str, Any]:
    return {"model": model, "messages": PROMPT, "max_tokens": max_tokens}


async def post_chat(session: aiohttp.ClientSession, base_url: str, key: str,
                    body: dict[str, Any], request_id: str | None = None,
                    timeout_s: float = 20.0) -> tuple[int, float, dict[str, Any]]:
    """(status, seconds, parsed body); status 0 if the connection failed."""
    headers = {"Authorization": f"Bearer {key}"}
    if request_id is not None:
        headers["x-request-id"] = request_id
    started = time.monotonic()
    try:
        async with session.post(f"{base_url}/chat/completions", json=body, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as r:
            data = await r.json(content_type=None)
            return r.status, time.monotonic() - started, data
    except (TimeoutError, aiohttp.ClientError):
        return 0, time.monotonic() - started, {}


def pg_bin(name: str) -> str:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return found[-1]


class PgCluster:
    """A throwaway PostgreSQL cluster on its own port, run as the 'postgres' user (the server
    refuses to run as root)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="polyroute-pg-"))
        self.data = self.dir / "data"
        shutil.chown(self.dir, "postgres", "postgres")
        self._run([pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                   "--no-sync"], timeout=60)
        self.start()
        self._run([pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                   "postgres", "ledger"])

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/ledger"

    def _run(self, args: list[str], timeout: float = 30) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(as_postgres + args, check=True, timeout=timeout, cwd=self.dir,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        # fsync off only matters if the machine crashes; commits still survive a stop.
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off")
        self._run([pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-w", "-t", "30",
                   "-l", str(self.dir / "pg.log"), "start"], timeout=40)

    def stop(self) -> None:
        """Stop the server (fast mode: clients are disconnected, commits are kept)."""
        self._run([pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def query(self, sql: str) -> str:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        out = subprocess.run(
            [*as_postgres, pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
             "postgres", "-d", "ledger", "-At", "-c", sql],
            check=True, timeout=30, capture_output=True, text=True, cwd=self.dir)
        return out.stdout.strip()

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self._run([pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                       "stop"])
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    """A private redis-server on its own port, for tests that stop it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = subprocess.run(["redis-cli", "-p", str(self.port), "ping"],
                                   capture_output=True, text=True)
            if probe.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def pause(self) -> None:
        """SIGSTOP: connections open but nothing answers (the worst kind of outage)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(5)

    def close(self) -> None:
        self.stop()
