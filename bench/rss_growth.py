"""What grows in a soak: tracemalloc snapshots of the gateway's Python heap, compared.

Starts the mock upstream and a polyroute target as ``soak.py`` does, with a ``sitecustomize``
on the target's PYTHONPATH that, on SIGUSR1, starts tracemalloc (the first time) and writes a
snapshot (the hook lives here, in the bench, not in the product). Drives wrk in slices, starts
tracing after ``--first`` requests and snapshots then and after ``--requests``; prints the top
allocation sites by growth between the two (what was allocated after tracing began and is
still held), beside RssAnon. Python's heap under tracemalloc is what the code holds; RssAnon
minus it is C memory (SQLite's prepared statements and page cache, OpenSSL, the allocator's
arenas). Not part of the test suite: it runs for minutes, and tracemalloc slows the gateway
down several times (and gdb's ``call (void)malloc_stats()`` shows where the C memory is).

    python bench/rss_growth.py --first 30000 --requests 300000
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path

import procs
import targets
from run import choose_upstream, prepare_work, run_wrk, wait_ready
from soak import STARTERS, memory_mb

_HOOK = '''\
import os, signal, tracemalloc
_taken = [0]
def _snapshot(signum, frame):
    _taken[0] += 1
    if not tracemalloc.is_tracing():  # the first signal starts tracing: startup stays fast
        tracemalloc.start(int(os.environ.get("RSS_FRAMES", "8")))
    tracemalloc.take_snapshot().dump(
        os.path.join(os.environ["RSS_SNAPSHOTS"], f"{_taken[0]}.snap"))
signal.signal(signal.SIGUSR1, _snapshot)
'''


def snapshot(pid: int, folder: Path, number: int) -> tracemalloc.Snapshot:
    os.kill(pid, signal.SIGUSR1)
    path = folder / f"{number}.snap"
    for _ in range(600):
        time.sleep(0.5)
        if path.exists():
            time.sleep(2.0)  # let the dump finish
            return tracemalloc.Snapshot.load(str(path))
    raise RuntimeError(f"no snapshot from {pid}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=int, default=30_000)
    parser.add_argument("--requests", type=int, default=300_000)
    parser.add_argument("--target", choices=sorted(STARTERS), default="polyroute-keys")
    parser.add_argument("--slice", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--stream-every", type=int, default=4)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / ".work" / "rss")
    args = parser.parse_args()

    prepare_work(args.work)
    hook, snaps = args.work / "hook", args.work / "snapshots"
    hook.mkdir(parents=True, exist_ok=True)
    snaps.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text(_HOOK)
    upstream = targets.start_upstream(choose_upstream("auto"), args.work, None)
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(hook), before) if p)
    os.environ["RSS_SNAPSHOTS"] = str(snaps)
    target = STARTERS[args.target](args.work, upstream.port, None)
    try:
        wait_ready(target)
        served, slices, taken = 0, 0, []
        while served < args.requests:
            stream = args.stream_every > 0 and slices % args.stream_every == args.stream_every - 1
            body = args.work / "bodies" / ("stream.json" if stream else "chat.json")
            stats, _ = run_wrk(target.url(stream), args.connections, args.slice, body, None,
                               target.client_key)
            served += int(stats["requests"])
            slices += 1
            anon, _ = memory_mb(target.proc.pid)
            print(f"{served:>10,} requests  private {anon:.1f} MB", flush=True)
            if (not taken and served >= args.first) or served >= args.requests:
                shot = snapshot(target.proc.pid, snaps, len(taken) + 1)
                heap = sum(s.size for s in shot.statistics("filename")) / 2**20
                print(f"  snapshot {len(taken) + 1}: traced Python heap {heap:.1f} MB, "
                      f"RssAnon {anon:.1f} MB", flush=True)
                taken.append(shot)
    finally:
        procs.stop(target.proc)
        procs.stop(upstream.proc)
    if len(taken) < 2:
        return 1
    print(f"\ngrowth between {args.first:,} and {served:,} requests, by allocation site:")
    for stat in taken[1].compare_to(taken[0], "traceback")[:args.top]:
        print(f"{stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+8d} blocks  "
              f"(now {stat.size / 1024:.1f} KiB)")
        for line in stat.traceback.format()[-8:]:
            print("      " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
