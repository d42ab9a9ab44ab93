"""Starting and stopping a simulator on a TCP port inside a running event loop."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from polyroute.sim.app import build_app
from polyroute.sim.settings import SimSettings

# Handlers holding a connection open (no_response, stream_stall) would otherwise
# delay shutdown by aiohttp's default 60 s.
SHUTDOWN_TIMEOUT_S = 1.0


@dataclass
class RunningSim:
    runner: web.AppRunner
    host: str
    port: int

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_sim(settings: SimSettings) -> RunningSim:
    """Serve the simulator on settings.host:settings.port (port 0 picks a free port)."""
    runner = web.AppRunner(
        build_app(settings),
        handler_cancellation=True,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        access_log=None,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    port = runner.addresses[0][1]
    return RunningSim(runner=runner, host=settings.host, port=int(port))
