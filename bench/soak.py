"""Soak: does the gateway's memory stay flat over a million requests?

Starts the mock upstream and one polyroute target (as ``run.py`` does), drives it with wrk in
slices until ``--requests`` have been answered, and samples the memory of every process of the
target after each slice. The verdict is on private memory (``RssAnon``: within ±10 % of the
first sample after warm-up, and at most ``--max-rss-mb`` per process). File-backed resident
pages (``RssFile``) are printed beside it but not judged: the ledger spool is a memory-mapped
file and SQLite reads its pages through the page cache, so they grow with the ledger and are
the kernel's to reclaim, not memory the process holds. Not part of the test suite: it runs for
minutes.

    python bench/soak.py --requests 1000000 --target polyroute-keys
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import procs
import targets
from run import choose_upstream, prepare_work, run_wrk, wait_ready

STARTERS = {
    "polyroute": targets.start_polyroute,
    "polyroute-keys": targets.start_polyroute_keys,
    "polyroute-redis": targets.start_polyroute_redis,
    "polyroute-w2": targets.start_polyroute_w2,
}


def memory_mb(pid: int) -> tuple[float, float]:
    """(private, file-backed) resident memory of ``pid`` in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) / 1024
    return fields.get("RssAnon", 0.0), fields.get("RssFile", 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--target", choices=sorted(STARTERS), default="polyroute-keys")
    parser.add_argument("--slice", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--stream-every", type=int, default=4,
                        help="every Nth slice streams (0: never)")
    parser.add_argument("--max-rss-mb", type=float, default=80.0)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / ".work" / "soak")
    args = parser.parse_args()

    prepare_work(args.work)
    upstream = targets.start_upstream(choose_upstream("auto"), args.work, None)
    target = STARTERS[args.target](args.work, upstream.port, None)
    try:
        wait_ready(target)
        served, errors, slices = 0, 0, 0
        samples: list[tuple[int, dict[int, float]]] = []  # private MB per process
        files: list[float] = []  # file-backed MB, all processes
        started = time.monotonic()
        while served < args.requests:
            stream = args.stream_every > 0 and slices % args.stream_every == args.stream_every - 1
            body = args.work / "bodies" / ("stream.json" if stream else "chat.json")
            stats, _ = run_wrk(target.url(stream), args.connections, args.slice, body, None,
                               target.client_key)
            served += int(stats["requests"])
            errors += sum(int(v) for k, v in stats.items() if k.startswith("errors_"))
            slices += 1
            memory = {pid: memory_mb(pid) for pid in procs.process_tree(target.proc.pid)}
            samples.append((served, {pid: anon for pid, (anon, _) in memory.items()}))
            files.append(sum(file for _, file in memory.values()))
            sizes = ", ".join(f"{anon:.1f}" for anon, _ in memory.values())
            print(f"{served:>10,} requests  {errors} errors  private MB per process: {sizes}  "
                  f"(file-backed, all: {files[-1]:.1f})", flush=True)
        minutes = (time.monotonic() - started) / 60
    finally:
        procs.stop(target.proc)
        procs.stop(upstream.proc)

    # The first slice warms caches and pools up: growth is judged from the second sample.
    baseline = max(samples[min(1, len(samples) - 1)][1].values())
    last = max(samples[-1][1].values())
    peak = max(max(s.values()) for _, s in samples)
    drift = (last - baseline) / baseline * 100
    flat = abs(drift) <= 10.0
    small = peak <= args.max_rss_mb
    print(f"\n{args.target}: {served:,} requests in {minutes:.1f} min, {errors} errors")
    print(f"largest process, private memory: after warm-up {baseline:.1f} MB, at the end "
          f"{last:.1f} MB ({drift:+.1f} %), peak {peak:.1f} MB; file-backed pages "
          f"{files[0]:.1f} → {files[-1]:.1f} MB (page cache of the spool and SQLite)")
    print(f"flat within ±10 %: {'met' if flat else 'MISSED'}; "
          f"≤ {args.max_rss_mb:g} MB per process: {'met' if small else 'MISSED'}")
    return 0 if flat and small and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
