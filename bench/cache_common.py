"""Shared by bench/cache.py and bench/prompt_cache.py: a simulator and a gateway as
processes (each in its own process group, killed at the end), and a JSON POST."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import Proc, free_port, start, stop, wait_port

WORK = Path(__file__).resolve().parent / ".work" / "cache"


@contextlib.contextmanager
def sim_and_gateway(name: str, groups: dict[str, Any], **extra: Any
                    ) -> Iterator[tuple[Proc, Proc, str]]:
    """A simulator and ``polyroute serve`` in front of it (ledger on, like the default);
    yields both processes and the gateway's base URL."""
    work = WORK / name
    work.mkdir(parents=True, exist_ok=True)
    sim_port, gw_port = free_port(), free_port()
    sim = start("sim", [sys.executable, "-m", "polyroute", "sim", "--port", str(sim_port)],
                work / "sim.log")
    gateway: Proc | None = None
    try:
        wait_port(sim_port, 20, sim)
        config = {
            "providers": {"sim": {"base_url": f"http://127.0.0.1:{sim_port}/v1",
                                  "auth": "none"}},
            "model_groups": groups,
            "storage": {"sqlite_path": str(work / "polyroute.db"),
                        "spool_dir": str(work / "spool")},
            **extra,
        }
        (work / "polyroute.yaml").write_text(yaml.safe_dump(config))
        gateway = start("polyroute", [sys.executable, "-m", "polyroute", "serve", "--config",
                                      str(work / "polyroute.yaml"), "--port", str(gw_port),
                                      "--log-level", "WARNING"], work / "gateway.log")
        wait_port(gw_port, 30, gateway)
        yield sim, gateway, f"http://127.0.0.1:{gw_port}/v1"
    finally:
        if gateway is not None:
            stop(gateway)
        stop(sim)


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    """The decoded answer and its x-polyroute-cache header ('' when absent)."""
    async with session.post(url, json=body, headers=headers or {}) as response:
        payload = await response.json()
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {payload}")
        return payload, response.headers.get("x-polyroute-cache", "")
