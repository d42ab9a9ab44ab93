"""The floor: the least a Python proxy on the same stack as polyroute can do per request.

aiohttp server + one shared aiohttp ClientSession + uvloop. The body is forwarded untouched to
the same path on the upstream and the response relayed; SSE responses are relayed chunk by
chunk as they arrive. Nothing is parsed, logged or counted, so any CPU a gateway spends above
this figure is the cost of its features.

    python bench/floor_proxy.py --port 8001 --upstream http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import aiohttp
import uvloop
from aiohttp import web

_SESSION = web.AppKey("session", aiohttp.ClientSession)
_UPSTREAM = web.AppKey("upstream", str)
_FORWARDED = ("Content-Type", "Authorization")


async def _relay(request: web.Request) -> web.StreamResponse:
    session = request.app[_SESSION]
    body = await request.read()
    headers = {h: request.headers[h] for h in _FORWARDED if h in request.headers}
    url = request.app[_UPSTREAM] + request.path_qs
    async with session.request(request.method, url, data=body, headers=headers) as upstream:
        content_type = upstream.headers.get("Content-Type", "application/octet-stream")
        if not content_type.startswith("text/event-stream"):
            payload = await upstream.read()
            return web.Response(
                status=upstream.status, body=payload, headers={"Content-Type": content_type}
            )
        response = web.StreamResponse(
            status=upstream.status,
            headers={"Content-Type": content_type, "Cache-Control": "no-cache"},
        )
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def _serve(port: int, upstream: str) -> None:
    app = web.Application()
    # limit=0: the shared pool must never queue requests that wrk has already admitted.
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
    session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
    app[_SESSION] = session
    app[_UPSTREAM] = upstream.rstrip("/")
    app.router.add_route("*", "/{tail:.*}", _relay)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8000")
    args = parser.parse_args()
    uvloop.run(_serve(args.port, args.upstream))


if __name__ == "__main__":
    main()
