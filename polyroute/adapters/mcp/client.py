"""One upstream MCP server, reached with the official ``mcp`` SDK's client: a streamable HTTP
endpoint, or a stdio server whose process polyroute starts itself.

The session is opened on first use and kept: its transport (the SDK's task group, or the
child process) lives in one background task, because the SDK's context managers must be
entered and left in the same task. Requests from any task go through the session. Whatever
goes wrong with the connection itself (refused, reset, the process died, no answer in
``timeout_s``) closes the session, so the next request opens a fresh one (a stdio server is
started again); the engine's circuit breaker decides whether there is a next request soon.

Failures are mapped into polyroute's error tree here, at the boundary: a JSON-RPC error the
server answered is :class:`ToolRefused` (an answer: the server is healthy), anything else an
:class:`~polyroute.errors.UpstreamError` that counts against the server's circuit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from polyroute.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from polyroute.model.mcp import McpServer, Tool

if TYPE_CHECKING:
    from mcp import ClientSession

log = logging.getLogger("polyroute.mcp")

_CLOSE_S = 5.0
"""How long closing a session may take (a stdio server gets 2 s to exit, then is killed)."""
_MAX_PAGES = 100


class ToolRefused(UpstreamError):
    """The MCP server answered with a JSON-RPC error (an unknown tool, invalid arguments …):
    relayed to the client with the server's code and message; the server is healthy."""

    status = 400
    code = "mcp_error"
    trigger = None
    transient = False

    def __init__(self, message: str, *, deployment: str, rpc_code: int) -> None:
        super().__init__(message, deployment=deployment)
        self.rpc_code = rpc_code


class McpClient:
    def __init__(self, server: McpServer) -> None:
        self.server = server
        self._session: ClientSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._connecting = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.server.name

    async def list_tools(self) -> list[Tool]:
        """Every tool the server lists (all pages)."""
        found: list[Tool] = []
        cursor: str | None = None
        async with self._failures("listing its tools"):
            session = await self._open()
            for _ in range(_MAX_PAGES):
                async with asyncio.timeout(self.server.timeout_s):
                    page = await session.list_tools(cursor)
                found.extend(Tool(self.name, t.name, t.model_dump(
                    mode="json", by_alias=True, exclude_none=True)) for t in page.tools)
                cursor = page.nextCursor
                if not cursor:
                    break
        return found

    async def call_tool(self, tool: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
        """The server's ``CallToolResult`` as JSON (``isError`` set when the tool itself
        failed: that is the tool's answer, relayed as it is)."""
        timeout = self.server.timeout_s
        async with self._failures(f"calling {tool}"):
            session = await self._open()
            # The SDK's own read timeout ends its request cleanly; ours bounds everything else.
            async with asyncio.timeout(timeout + 1.0):
                result = await session.call_tool(tool, arguments,
                                                 read_timeout_seconds=timedelta(seconds=timeout))
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)

    async def aclose(self) -> None:
        """Close the session (a stdio server's process is stopped)."""
        await self._close()

    # -- the session ----------------------------------------------------------------------
    async def _open(self) -> ClientSession:
        if self._session is not None and self._runner is not None and not self._runner.done():
            return self._session
        async with self._connecting:
            if self._session is not None and self._runner is not None and (
                    not self._runner.done()):
                return self._session
            await self._close()
            ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
            # Read even when nobody waits any more (a timed-out connect): no "never retrieved".
            ready.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._stop = asyncio.Event()
            self._runner = asyncio.create_task(self._run(ready, self._stop),
                                               name=f"polyroute-mcp-{self.name}")
            try:
                async with asyncio.timeout(self.server.connect_timeout_s):
                    self._session = await asyncio.shield(ready)
            except BaseException:
                await self._close()
                raise
            return self._session

    async def _run(self, ready: asyncio.Future[ClientSession], stop: asyncio.Event) -> None:
        from mcp import ClientSession

        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await self._transport(stack)
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                if not ready.done():
                    ready.set_result(session)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception)
                                    else ConnectionError(f"{type(exc).__name__}"))
            else:
                log.debug("MCP server %s: session ended: %r", self.name, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            if not ready.done():
                ready.set_exception(ConnectionError("the session ended before it opened"))

    async def _transport(self, stack: contextlib.AsyncExitStack) -> tuple[Any, Any]:
        server = self.server
        if server.url is not None:
            import httpx
            from mcp.client import streamable_http

            client = httpx.AsyncClient(
                headers=server.headers, follow_redirects=True,
                timeout=httpx.Timeout(server.timeout_s, connect=server.connect_timeout_s))
            await stack.enter_async_context(client)
            read, write, _ = await stack.enter_async_context(
                streamable_http.streamable_http_client(server.url, http_client=client,
                                                       terminate_on_close=True))
            return read, write
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(command=server.command[0], args=list(server.command[1:]),
                                       env=dict(server.env) or None, cwd=server.cwd)
        read, write = await stack.enter_async_context(stdio_client(params))
        return read, write

    async def _close(self) -> None:
        runner, self._runner, self._session = self._runner, None, None
        if runner is None or runner.done():
            return
        self._stop.set()  # leaves the SDK's contexts in their own task: a clean exit
        done, _ = await asyncio.wait({runner}, timeout=_CLOSE_S)
        if not done:
            runner.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait({runner}, timeout=_CLOSE_S)

    @contextlib.asynccontextmanager
    async def _failures(self, doing: str) -> AsyncIterator[None]:
        """Map the SDK's and the transport's exceptions; drop a broken session."""
        try:
            yield
        except UpstreamError:
            raise
        except Exception as exc:
            error = self._mapped(_leaf(exc), doing)
            if not isinstance(error, ToolRefused):
                await self._close()
            raise error from exc

    def _mapped(self, exc: BaseException, doing: str) -> UpstreamError:
        from mcp.shared.exceptions import McpError

        where = f"MCP server '{self.name}'"
        if isinstance(exc, McpError):
            code = exc.error.code
            if code == 408:  # the SDK's own read timeout (httpx.codes.REQUEST_TIMEOUT)
                return UpstreamTimeout(f"{where} did not answer within "
                                       f"{self.server.timeout_s:g} s ({doing}).",
                                       deployment=self.name)
            if code == -32000 and "closed" in exc.error.message.lower():
                return UpstreamConnectError(f"{where} closed the connection ({doing}).",
                                            deployment=self.name)
            return ToolRefused(f"{where}: {exc.error.message}", deployment=self.name,
                               rpc_code=code)
        if isinstance(exc, TimeoutError):
            return UpstreamTimeout(f"{where} did not answer in time ({doing}).",
                                   deployment=self.name)
        if isinstance(exc, OSError | ConnectionError | EOFError):
            return UpstreamConnectError(f"{where} could not be reached ({doing}): {exc}",
                                        deployment=self.name)
        # httpx errors, a process that exited, a malformed answer
        return UpstreamProtocolError(f"{where} failed ({doing}): {type(exc).__name__}: {exc}",
                                     deployment=self.name)


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside the SDK's task groups' exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
