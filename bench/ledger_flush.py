"""How fast the SQLite ledger flusher writes records, as the table grows.

Appends records to a real spool, then flushes them into a real SQLite database with the
gateway's own ``LedgerWriter``, in rounds, printing records per second and CPU per record
(the process's, so the flusher's thread counts) after each round. ``--ids random`` uses wholly
random request ids, as polyroute did before issue 12; the default uses the gateway's own
``RequestIds`` (time first). ``--contend`` keeps a thread busy running Python meanwhile, as
the event loop is at saturation, so the flusher's thread must win the GIL back after every
SQLite call. Not part of the test suite.

    python bench/ledger_flush.py --rounds 5 --per-round 200000
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import threading
import time
from pathlib import Path

from polyroute.storage.ledger import LedgerEntry, LedgerWriter
from polyroute.storage.spool import Spool
from polyroute.storage.sqlite import open_database
from polyroute.surface.http import RequestIds


def entry(request_id: str, i: int, now: float) -> LedgerEntry:
    return LedgerEntry(
        entry_id=f"bench{i:012x}", request_id=request_id, ts=now, day="2026-12-03",
        key_id=f"key{i % 50}", team="team1", org="org1", endpoint="chat",
        requested_model="gpt-4o-mini", model_group="gpt-4o-mini", vendor="openai",
        deployment="openai-1", upstream_model="gpt-4o-mini", status=200, error_class=None,
        prompt_tokens=12, completion_tokens=40, cached_tokens=0, cache_write_tokens=0,
        reasoning_tokens=0, cost_usd=0.0000258, priced=1, price_source="catalog",
        latency_ms=3.2, attempts='[["openai-1","openai","ok",200,3.2]]')


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=200_000)
    parser.add_argument("--ids", choices=("gateway", "random"), default="gateway")
    parser.add_argument("--contend", action="store_true")
    args = parser.parse_args()
    stop = threading.Event()
    if args.contend:
        threading.Thread(target=spin, args=(stop,), daemon=True).start()
    ids = RequestIds()
    new_id = ids.new if args.ids == "gateway" else (lambda: secrets.token_hex(16))
    with tempfile.TemporaryDirectory() as work:
        db = await open_database(str(Path(work) / "ledger.db"))
        writer = LedgerWriter(Spool(str(Path(work) / "spool")), db, batch=1000)
        writer.open()
        i = 0
        for _round in range(args.rounds):
            now = time.time()
            for _ in range(args.per_round):
                writer.append(entry(new_id(), i, now))
                i += 1
            cpu, wall = time.process_time(), time.perf_counter()
            await writer.flush()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            per_row_us = cpu / args.per_round * 1e6
            print(f"ids={args.ids} contend={args.contend:d} "
                  f"rows {i - args.per_round:>8}..{i:<8} {args.per_round / wall:8.0f} rows/s  "
                  f"{per_row_us:6.1f} µs CPU/row (process)", flush=True)
        await writer.aclose()
        await db.close()
    stop.set()


def spin(stop: threading.Event) -> None:
    total = 0
    while not stop.is_set():
        for i in range(1000):
            total += i


if __name__ == "__main__":
    asyncio.run(main())
