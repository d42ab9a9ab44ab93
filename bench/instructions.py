"""Instructions per proxied request, counted by valgrind: a figure the machine's load does not move.

    python bench/instructions.py [--seconds 20] [--keys | --redis] [--idle 10] [--stream]
                                 [--connections 16] [--src TREE ...]

CPU time per request (``run.py``) swings with whatever else the machine runs: other processes
evict the caches and steal the core, and a busy two-core machine moved polyroute's figure by
±20 % between two runs of the same code. Instructions executed do not depend on that. This
runs ``polyroute serve`` (the bench config of ``run.py``) under ``valgrind --tool=callgrind``,
warms it up, zeroes the counters, drives it with wrk, and divides the instructions executed by
every thread of the process (the event loop, the ledger flusher, the metrics) by the requests
it answered. Each ``--src`` tree (e.g. a worktree of an older commit) is measured the same
way, one after another, so a change can be compared with its parent on any machine.

Instructions are not time (a cache miss costs no instruction), so a figure here says whether
code does more or less work, and ``run.py`` on a quiet machine says what that costs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import payloads
import procs
import targets


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=20, help="measured wrk run (under valgrind)")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--keys", action="store_true", help="the polyroute-keys target's config")
    p.add_argument("--redis", action="store_true",
                   help="the polyroute-redis target's config (keys, limits in the local Redis)")
    p.add_argument("--stream", action="store_true")
    p.add_argument("--floor", action="store_true",
                   help="measure the floor proxy too, first, and print each ratio to it")
    p.add_argument("--extra", type=Path, default=None,
                   help="YAML appended to polyroute's config ({upstream} stands for the mock "
                        "upstream's base URL), e.g. a tracing section to measure its cost")
    p.add_argument("--idle", type=int, default=0, metavar="SECONDS",
                   help="also count an idle window this long before the measured run, and "
                        "report the figure net of that background rate (valgrind slows the "
                        "process ~50x but not its timers: work on a wall-clock period, such "
                        "as Redis mode's health pings and syncs, is then charged ~50x per "
                        "request)")
    p.add_argument("--src", type=Path, action="append", default=[],
                   help="source tree to measure (repeatable); default: the installed one")
    return p.parse_args()


def _wrk(url: str, connections: int, key: str, stream: bool, seconds: int, work: Path) -> int:
    """Requests answered, all with status 200 (anything else fails the measurement)."""
    body = work / ("stream.json" if stream else "chat.json")
    body.write_bytes(payloads.request_body(stream))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "-s",
         str(Path(__file__).parent / "chat.lua"), url, "--", str(body), key],
        capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH_JSON "))
    result = json.loads(line.removeprefix("BENCH_JSON "))
    failed = sum(v for k, v in result.items() if k.startswith("errors_"))
    if failed:
        raise RuntimeError(f"{failed} requests failed: {line}")
    return int(result["requests"])


def _callgrind(pid: int, *flags: str) -> None:
    subprocess.run(["callgrind_control", *flags, str(pid)], capture_output=True, check=True)


def _instructions(out_dir: Path) -> int:
    """Summed over the dumps (the one asked for, and the one written at exit): instrumentation
    is on only while the measured run goes, so they hold nothing else."""
    total = 0
    for dump in sorted(out_dir.glob("callgrind.out.*")):
        counts = [int(line.split()[1]) for line in dump.read_text(errors="replace").splitlines()
                  if line.startswith(("summary:", "totals:"))]
        total += max(counts, default=0)
    return total


def measure(name: str, argv: list[str], port: int, paths: tuple[str, str],
            args: argparse.Namespace, home: Path, dumps: Path,
            src: Path | None = None) -> dict[str, object]:
    """Run ``argv`` under callgrind, instrumented only while the measured wrk run goes."""
    env = {"BENCH_UPSTREAM_KEY": payloads.UPSTREAM_KEY, "BENCH_MASTER_KEY": targets.MASTER_KEY,
           "XDG_DATA_HOME": str(home / "data"), "XDG_STATE_HOME": str(home / "state"),
           "PYTHONMALLOC": "malloc", "OPENBLAS_NUM_THREADS": "1"}
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                f"--callgrind-out-file={dumps}/callgrind.out.%p"]
    with targets.polyroute_source(src):
        proc = procs.start(name, [*valgrind, *argv], home / f"{name}.log", env, None, home)
    target = targets.Target(name, proc, port, *paths, ready_timeout=300)
    try:
        procs.wait_port(target.port, 300, proc)
        if (args.keys or args.redis) and name != "floor":
            target = targets._with_key(target)
        url = target.url(args.stream)
        _wrk(url, args.connections, target.client_key, args.stream, 10, home)  # warm up
        time.sleep(2)
        idle = 0
        if args.idle:
            _callgrind(proc.pid, "-i", "on")
            time.sleep(args.idle)
            _callgrind(proc.pid, "-i", "off")
            _callgrind(proc.pid, "-d")
            idle = _instructions(dumps)
            (dumps / "idle").mkdir()
            for dump in dumps.glob("callgrind.out.*"):
                dump.rename(dumps / "idle" / dump.name)
        _callgrind(proc.pid, "-i", "on")
        served = _wrk(url, args.connections, target.client_key, args.stream, args.seconds, home)
        time.sleep(2)  # the ledger flusher writes what the run left in its spool
        _callgrind(proc.pid, "-i", "off")
        _callgrind(proc.pid, "-d")
    finally:
        procs.stop(proc, grace=30)
    instructions = _instructions(dumps)
    result: dict[str, object] = {"target": name, "requests": served,
                                 "instructions": instructions,
                                 "per_request": round(instructions / max(served, 1))}
    if args.idle:
        background = idle / args.idle * (args.seconds + 2)  # the run and the sleep after it
        result["idle_per_second"] = round(idle / args.idle)
        result["net_per_request"] = round((instructions - background) / max(served, 1))
    return result


def measure_polyroute(src: Path | None, args: argparse.Namespace, upstream_port: int,
                      work: Path) -> dict[str, object]:
    name = f"polyroute@{src}" if src else "polyroute"
    home = work / f"polyroute-{len(list(work.iterdir()))}"
    home.mkdir(parents=True)
    config = home / "polyroute.yaml"
    extra = targets.extra_config(args.keys, args.redis)
    if args.extra is not None:
        extra += args.extra.read_text().replace("{upstream}", f"http://127.0.0.1:{upstream_port}")
    config.write_text(targets.polyroute_config(upstream_port, home, extra))
    dumps = home / "callgrind"
    dumps.mkdir()
    port = procs.free_port()
    argv = [sys.executable, "-m", "polyroute", "serve", "--config", str(config), "--port",
            str(port)]
    return measure(name, argv, port, (payloads.GATEWAY_CHAT_PATH, payloads.GATEWAY_CHAT_PATH),
                   args, home, dumps, src)


def measure_floor(args: argparse.Namespace, upstream_port: int, work: Path) -> dict[str, object]:
    home = work / "floor"
    dumps = home / "callgrind"
    dumps.mkdir(parents=True)
    port = procs.free_port()
    argv = [sys.executable, str(targets.BENCH_DIR / "floor_proxy.py"), "--port", str(port),
            "--upstream", f"http://127.0.0.1:{upstream_port}"]
    return measure("floor", argv, port, (payloads.UPSTREAM_CHAT_PATH,
                                         payloads.UPSTREAM_STREAM_PATH), args, home, dumps)


def main() -> int:
    args = parse_args()
    for tool in ("wrk", "valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install -y {tool.split('_')[0]})")
    work = targets.BENCH_DIR / ".work" / "instructions"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    upstream = targets.start_upstream(
        "nginx" if targets.nginx_available() else "python", work, None)
    results = []
    try:
        procs.wait_port(upstream.port, 30, upstream.proc)
        if args.floor:
            results.append(measure_floor(args, upstream.port, work))
            print(json.dumps(results[-1]), flush=True)
        for src in args.src or [None]:
            results.append(measure_polyroute(src, args, upstream.port, work))
            print(json.dumps(results[-1]), flush=True)
    finally:
        procs.stop(upstream.proc)
    kind = (("stream" if args.stream else "chat") + (" keys" if args.keys else "")
            + (" redis" if args.redis else ""))
    print(f"\ninstructions per request ({kind}, c={args.connections}):")
    floor = next((r["per_request"] for r in results if r["target"] == "floor"), None)
    for result in results:
        ratio = f"  {result['per_request'] / floor:.2f}x the floor" if floor else ""
        print(f"  {result['per_request']:>12,}  {result['target']}  "
              f"({result['requests']} requests){ratio}")
        if "net_per_request" in result:
            net = result["net_per_request"]
            print(f"  {net:>12,}  net of the idle rate ({result['idle_per_second']:,}/s)"
                  + (f"  {net / floor:.2f}x the floor" if floor else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
