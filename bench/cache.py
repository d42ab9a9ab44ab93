"""What a response-cache hit costs the gateway, against the same request proxied upstream.

    python bench/cache.py [--requests 2000] [--concurrency 1,16]

One gateway (a group with ``cache: deterministic``, the in-process backend) in front of the
simulator. "proxied": the same temperature-0 request with ``Cache-Control: no-store``, so
every one goes to the simulator (the gateway's full path: route, admit, upstream call,
relay, ledger). "hit": the same request without the header, after one miss stored it.
Reported: the gateway's CPU ms per request (utime+stime of its process, from /proc, before
and after each run: the figure to compare on a noisy shared machine), and p50/p99 latency.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import aiohttp
from cache_common import post, sim_and_gateway
from procs import cpu_seconds

BODY: dict[str, Any] = {
    "model": "cached", "temperature": 0, "max_tokens": 64,
    "messages": [{"role": "system", "content": "You are a terse assistant. " * 20},
                 {"role": "user", "content": "What is the capital of France? " * 4}],
}


async def run(url: str, pid: int, requests: int, concurrency: int,
              headers: dict[str, str], expect: str, stream: bool) -> dict[str, float]:
    body = {**BODY, "stream": stream}
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one() -> None:
            started = time.perf_counter()
            async with session.post(url, json=body, headers=headers) as response:
                await response.read()
                assert response.status == 200, response.status
                assert response.headers.get("x-polyroute-cache") == expect
            latencies.append(time.perf_counter() - started)

        for _ in range(20):  # warm up
            await one()
        latencies.clear()
        left = requests

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await one()

        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu1, t1 = cpu_seconds(pid), time.perf_counter()
    latencies.sort()
    return {"cpu_ms": (cpu1 - cpu0) * 1000 / requests, "rps": requests / (t1 - t0),
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000}


async def main_async(args: argparse.Namespace) -> None:
    groups = {"cached": {"cache": "deterministic",
                         "deployments": [{"provider": "sim", "model": "gpt-4o-mini"}]}}
    with sim_and_gateway("hit-cost", groups) as (_, gateway, base):
        url = base + "/chat/completions"
        async with aiohttp.ClientSession() as session:
            _, outcome = await post(session, url, BODY)
            assert outcome in ("miss", "hit"), outcome
            await asyncio.sleep(0.2)  # stored in the background
        print("| scenario | connections | gateway CPU ms/req | p50 ms | p99 ms | req/s |")
        print("|---|---|---|---|---|---|")
        for concurrency in args.concurrency:
            for stream in (False, True):
                kind = "stream" if stream else "whole"
                for name, headers, expect in (
                        ("proxied", {"Cache-Control": "no-store"}, "bypass"),
                        ("hit", {}, "hit")):
                    r = await run(url, gateway.pid, args.requests, concurrency, headers,
                                  expect, stream)
                    print(f"| {name} ({kind}) | {concurrency} | {r['cpu_ms']:.3f} | "
                          f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rps']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, 16])
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
