"""An upstream MCP server for the MCP gateway's tests, built with the official SDK's FastMCP:
``python tests/support/mcp_server.py stdio`` (started by polyroute itself) or
``python tests/support/mcp_server.py http PORT`` (streamable HTTP at /mcp on loopback)."""

from __future__ import annotations

import os
import sys

import anyio
from mcp.server.fastmcp import FastMCP

transport = sys.argv[1]
port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
server = FastMCP(f"test-{transport}", host="127.0.0.1", port=port, log_level="WARNING")
calls: list[str] = []


@server.tool()
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    calls.append("add")
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Say the text back, with where it was answered."""
    calls.append("echo")
    return f"{transport}: {text}"


@server.tool()
def secret() -> str:
    """A tool most keys may not use."""
    calls.append("secret")
    return "the launch codes"


@server.tool()
async def pause(seconds: float) -> str:
    """Answer after this many seconds (a hanging server, for short timeouts)."""
    calls.append("pause")
    await anyio.sleep(seconds)
    return "done"


@server.tool()
def pid() -> int:
    """This server's process id."""
    return os.getpid()


@server.tool()
def history() -> str:
    """The tools called so far on this server, in order, comma-separated."""
    return ",".join(calls)


if __name__ == "__main__":
    server.run(transport="stdio" if transport == "stdio" else "streamable-http")
