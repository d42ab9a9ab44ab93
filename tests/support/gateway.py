"""Run a real ``polyroute serve`` process for a test, on a free loopback port."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """``polyroute serve`` in a subprocess. ``config`` is written as YAML (None: zero-config)."""

    def __init__(
        self,
        config: dict[str, Any] | None,
        env: dict[str, str] | None = None,
        *,
        tmp: Path | None = None,
        log_level: str = "INFO",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self._tmpdir = (
            tempfile.TemporaryDirectory(prefix="polyroute-test-") if tmp is None else None)
        self.dir = Path(self._tmpdir.name) if self._tmpdir else tmp  # type: ignore[assignment]
        self.port = free_port()
        self.db_path = self.dir / "polyroute.db"
        self.log_path = self.dir / "gateway.log"
        args = [sys.executable, "-m", "polyroute", "serve", "--port", str(self.port),
                "--log-level", log_level, *extra_args]
        if config is not None:
            config = dict(config)
            config.setdefault("storage", {}).setdefault("sqlite_path", str(self.db_path))
            self.config_path = self.dir / "config.yaml"
            self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
            args += ["--config", str(self.config_path)]
        full_env = {k: v for k, v in os.environ.items()
                    if not k.endswith(("_API_KEY", "_BASE_URL")) and k != "POLYROUTE_CONFIG"}
        full_env["XDG_DATA_HOME"] = str(self.dir / "data")
        full_env.update(env or {})
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=full_env)
        self._wait_ready()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"polyroute exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.root_url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"polyroute did not become healthy:\n{self.log()}")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"{self.root_url}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def provider(base_url: str, key_env: str | None = None, **extra: Any) -> dict[str, Any]:
    section: dict[str, Any] = {"base_url": base_url, **extra}
    if key_env:
        section["api_key"] = "${" + key_env + "}"
    return section


def ledger_row(gw: GatewayProcess, request_id: str) -> dict[str, Any]:
    """The gateway's ledger row of a request (by its id), waiting up to 5 s for the flush."""
    deadline = time.monotonic() + 5
    while True:
        with sqlite3.connect(gw.db_path) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM ledger WHERE request_id = ?",
                             (request_id,)).fetchone()
        if row is not None:
            return dict(row)
        assert time.monotonic() < deadline, f"no ledger row for {request_id}"
        time.sleep(0.05)
