"""What a detector scan costs inline and in a worker thread, and the thread's hand-off alone:
the figures behind ``OFFLOAD_CHARS`` (engine/guardrails.py), the length from which a scan
runs in a thread so that its hook's time budget bounds the wait.

    PYTHONPATH=. python bench/guardrails/offload.py [--iterations 2000]

Wall time per call over ``--iterations`` sequential calls on one event loop; texts are the
digit-dense kind that costs the detectors most (dates, times, phone-like numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

from polyroute.guardrails.detectors import detect

_LINE = "Call 555-0100 on 2024-03-01 at 10:30, ref 88-1234-99. "


async def _per_call(run: Callable[[], Awaitable[object]], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await run()
    return (time.perf_counter() - start) / n * 1e6


async def _measure(n: int) -> None:
    async def noop() -> None:
        return None

    handoff = await _per_call(lambda: asyncio.to_thread(len, ""), n) - await _per_call(noop, n)
    print(f"thread hand-off alone: {handoff:.0f} µs")
    for size in (256, 1024, 4096, 16384):
        text = (_LINE * (size // len(_LINE) + 1))[:size]

        async def inline(text: str = text) -> None:
            detect(text)

        scan = await _per_call(inline, n)
        threaded = await _per_call(lambda text=text: asyncio.to_thread(detect, text), n)
        print(f"{size:>6} chars: inline {scan:7.0f} µs, in a thread {threaded:7.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=2000)
    asyncio.run(_measure(parser.parse_args().iterations))


if __name__ == "__main__":
    main()
