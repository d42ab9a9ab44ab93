"""CPU per request of two polyroute trees, interleaved: ``perf stat -e task-clock`` on the target.

    python bench/ab_cpu.py --kinds floor,plain,keys,redis --src OLD_TREE --src NEW_TREE \
                           [--rounds 3] [--seconds 6]

Each round starts every kind from every tree in turn (the floor once), warms it up for 3 s
(failures there are ignored), and divides the task-clock of the target's process over a wrk
run (16 connections, non-streaming) by the requests it answered (a run with failures is not
counted); the last lines are each target's median round.
A shorter, narrower ``run.py --baseline``: for a before/after on a machine whose load moves,
where only rounds close in time compare.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import payloads
import procs
import targets

_START = {"plain": targets.start_polyroute, "keys": targets.start_polyroute_keys,
          "redis": targets.start_polyroute_redis, "floor": targets.start_floor}


def _wrk(target: targets.Target, seconds: int, body: Path) -> tuple[int, int]:
    """(requests answered, of which failed)."""
    out = subprocess.run(
        ["wrk", "-t1", "-c16", f"-d{seconds}s", "-s", str(targets.BENCH_DIR / "chat.lua"),
         target.url(False), "--", str(body), target.client_key],
        capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH_JSON "))
    result = json.loads(line.removeprefix("BENCH_JSON "))
    return int(result["requests"]), sum(v for k, v in result.items() if k.startswith("errors_"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kinds", default="floor,plain,keys,redis")
    p.add_argument("--src", type=Path, action="append", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=6)
    args = p.parse_args()
    work = targets.BENCH_DIR / ".work" / "ab_cpu"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    upstream = targets.start_upstream(
        "nginx" if targets.nginx_available() else "python", work, None)
    procs.wait_port(upstream.port, 30, upstream.proc)
    body = work / "chat.json"
    body.write_bytes(payloads.request_body(False))
    results: dict[str, list[float]] = {}
    try:
        for _ in range(args.rounds):
            for kind in args.kinds.split(","):
                for src in args.src[:1] if kind == "floor" else args.src:
                    os.environ["PYTHONPATH"] = str(src)
                    target = _START[kind](work, upstream.port, None)
                    try:
                        procs.wait_port(target.port, 60, target.proc)
                        _wrk(target, 3, body)
                        time.sleep(1)
                        perf = subprocess.Popen(
                            ["perf", "stat", "-x,", "-e", "task-clock", "-p",
                             str(target.proc.pid)], stderr=subprocess.PIPE, text=True)
                        time.sleep(0.3)
                        served, failed = _wrk(target, args.seconds, body)
                        time.sleep(0.5)  # the ledger's flush of what the run left
                        perf.send_signal(2)
                        ms = float(perf.communicate()[1].split(",", 1)[0])
                    finally:
                        procs.stop(target.proc)
                    name = kind if kind == "floor" else f"{kind}@{src}"
                    if failed:  # e.g. Redis declared down on a starved machine: 503s are cheap
                        print(f"{name:40s} {failed} of {served} requests failed: not counted")
                        continue
                    results.setdefault(name, []).append(ms / served)
                    print(f"{name:40s} {served:7d} requests  {ms / served:.3f} ms CPU/request",
                          flush=True)
    finally:
        procs.stop(upstream.proc)
    print("median of the rounds:")
    for name, values in results.items():
        print(f"{name:40s} {sorted(values)[len(values) // 2]:.3f}")


if __name__ == "__main__":
    main()
