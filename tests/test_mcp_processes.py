"""The stdio MCP servers polyroute starts: a reload that removes (or changes) one stops its
process and leaves the others running; shutting down stops the rest."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from polyroute.config.compiled import Circuit, McpSettings
from polyroute.engine.circuit import Breakers
from polyroute.engine.tools import ToolHub
from polyroute.model.mcp import McpServer
from polyroute.policy.types import ANONYMOUS, OpenPolicy

SERVER = str(Path(__file__).parent / "support" / "mcp_server.py")


def settings(*names: str) -> McpSettings:
    return McpSettings({n: McpServer(n, command=(sys.executable, SERVER, "stdio"),
                                     connect_timeout_s=60) for n in names},
                       {n: Circuit() for n in names})


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def pid_of(hub: ToolHub, server: str) -> int:
    result = await hub.call(ANONYMOUS, f"{server}__pid", {}, "test")
    return int(result["content"][0]["text"])


async def test_reload_stops_removed_servers_and_shutdown_the_rest() -> None:
    hub = ToolHub(settings("a", "b"), Breakers(time.monotonic), OpenPolicy(), [])
    try:
        names = {t.qualified for t in await hub.tools(ANONYMOUS)}  # starts both processes
        assert {"a__pid", "b__pid"} <= names
        a, b = await pid_of(hub, "a"), await pid_of(hub, "b")
        assert a != b and alive(a) and alive(b)
        hub.use(settings("b"))  # 'a' removed by a reload
        assert hub.servers == ["b"]
        deadline = time.monotonic() + 10
        while alive(a):
            assert time.monotonic() < deadline, "the removed server's process still runs"
            await asyncio.sleep(0.05)  # the process is stopped by a background task
        assert alive(b) and await pid_of(hub, "b") == b  # kept its session and process
    finally:
        await hub.aclose()
    assert not alive(b)
