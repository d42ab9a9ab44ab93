"""Instructions per proxied request, counted by valgrind: a figure the machine's load does not move.

    python bench/instructions.py [--seconds 20] [--keys | --redis] [--stream] [--connections 16]
                                 [--src TREE ...] [--extra YAML [--pair]] [--rate] [--idle S]

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

``--extra YAML --pair`` measures each tree without the extra config and with it, one after the
other, and prints what the extra adds per request (e.g. ``tracing.yaml``: tracing's cost).
``--rate`` converts instructions to CPU time: after the valgrind runs it runs each
configuration again natively, for as long, and divides the instructions per request by the
process's CPU time per request (every thread, from /proc): instructions per µs on this
machine, now. ``--idle 20`` then counts 20 s of the process idling (its timers: ledger,
exporters, metrics) and prints each figure less that background rate over the measured run:
under valgrind the throughput moves with the machine's load (500–1,500 requests in 40 s
here), and with it the share of clock-driven work in each request's figure. The callgrind
dumps stay in ``bench/.work/instructions/*/callgrind`` for
``callgrind_annotate``.
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
    p.add_argument("--pair", action="store_true",
                   help="with --extra: measure each tree without it too, and print the difference")
    p.add_argument("--rate", action="store_true",
                   help="measure each configuration natively too (CPU time per request), and "
                        "convert instructions to µs with the rate that gives")
    p.add_argument("--idle", type=int, default=0, metavar="SECONDS",
                   help="then count SECONDS of idling too, and print the per-request figure "
                        "less that background rate over the measured run")
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
    return sum(_instructions_in(dump) for dump in sorted(out_dir.glob("callgrind.out.*")))


def _instructions_in(dump: Path) -> int:
    # "totals:", not "summary:": in a dump after the first, valgrind 3.19 writes a summary
    # that wrapped below zero (2^64 less a little).
    counts = [int(line.split()[1]) for line in dump.read_text(errors="replace").splitlines()
              if line.startswith("totals:")]
    return max(counts, default=0)


def _env(home: Path) -> dict[str, str]:
    return {"BENCH_UPSTREAM_KEY": payloads.UPSTREAM_KEY, "BENCH_MASTER_KEY": targets.MASTER_KEY,
            "XDG_DATA_HOME": str(home / "data"), "XDG_STATE_HOME": str(home / "state"),
            "PYTHONMALLOC": "malloc", "OPENBLAS_NUM_THREADS": "1"}


def measure_native(name: str, argv: list[str], port: int, paths: tuple[str, str],
                   args: argparse.Namespace, home: Path,
                   src: Path | None = None) -> tuple[float, float]:
    """CPU µs per request of ``argv`` run natively (every thread; the same wrk run), in all
    and in user space only."""
    with targets.polyroute_source(src):
        proc = procs.start(name, argv, home / f"{name}-native.log", _env(home), None, home)
    target = targets.Target(name, proc, port, *paths)
    try:
        procs.wait_port(target.port, 60, proc)
        if (args.keys or args.redis) and name != "floor":
            target = targets._with_key(target)
        url = target.url(args.stream)
        _wrk(url, args.connections, target.client_key, args.stream, 10, home)  # warm up
        time.sleep(2)
        before, user_before = procs.cpu_seconds(proc.pid), procs.user_cpu_seconds(proc.pid)
        served = _wrk(url, args.connections, target.client_key, args.stream, args.seconds, home)
        time.sleep(2)  # as under callgrind: the ledger flusher's and exporter's work counts
        cpu = procs.cpu_seconds(proc.pid) - before
        user = procs.user_cpu_seconds(proc.pid) - user_before
    finally:
        procs.stop(proc, grace=30)
    return cpu * 1e6 / max(served, 1), user * 1e6 / max(served, 1)


def measure(name: str, argv: list[str], port: int, paths: tuple[str, str],
            args: argparse.Namespace, home: Path, dumps: Path,
            src: Path | None = None) -> dict[str, object]:
    """Run ``argv`` under callgrind, instrumented only while the measured wrk run goes."""
    env = _env(home)
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
        _callgrind(proc.pid, "-i", "on")
        started = time.monotonic()
        served = _wrk(url, args.connections, target.client_key, args.stream, args.seconds, home)
        time.sleep(2)  # the ledger flusher writes what the run left in its spool
        window = time.monotonic() - started
        if args.idle:
            _callgrind(proc.pid, "-d")  # the measured run's dump; then the idle one
            time.sleep(args.idle)
        _callgrind(proc.pid, "-i", "off")
        _callgrind(proc.pid, "-d")
    finally:
        procs.stop(proc, grace=30)
    idle = 0
    if args.idle:
        last = max(dumps.glob("callgrind.out.*.*"), key=lambda p: int(p.suffix[1:]))
        idle = _instructions_in(last)
        last.rename(last.with_name("idle." + last.name))  # (out of _instructions' glob)
    instructions = _instructions(dumps)
    result: dict[str, object] = {"target": name, "requests": served,
                                 "instructions": instructions,
                                 "per_request": round(instructions / max(served, 1))}
    if args.idle:
        # What the process does by the clock whatever the traffic (timers of the ledger,
        # exporters, metrics), at the idle rate, over the measured window: under valgrind
        # the throughput, so the requests these are spread over, moves with the machine's load.
        background = idle / args.idle * window
        result["idle_per_s"] = round(idle / args.idle)
        result["per_request_less_idle"] = round((instructions - background) / max(served, 1))
    if args.rate:
        cpu_us, user_us = measure_native(name, argv, port, paths, args, home, src)
        result["cpu_us_per_request"] = round(cpu_us, 1)
        result["instructions_per_us"] = round(instructions / max(served, 1) / cpu_us, 1)
        # Callgrind counts user-space instructions: this rate leaves the kernel's time out.
        result["user_us_per_request"] = round(user_us, 1)
        result["instructions_per_user_us"] = round(instructions / max(served, 1) / user_us, 1)
    return result


def measure_polyroute(src: Path | None, args: argparse.Namespace, upstream_port: int,
                      work: Path, with_extra: bool = True) -> dict[str, object]:
    name = f"polyroute@{src}" if src else "polyroute"
    if args.extra is not None and with_extra:
        name += f" +{args.extra.name}"
    home = work / f"polyroute-{len(list(work.iterdir()))}"
    home.mkdir(parents=True)
    config = home / "polyroute.yaml"
    extra = targets.extra_config(args.keys, args.redis)
    if args.extra is not None and with_extra:
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
        pairs: list[tuple[dict[str, object], dict[str, object]]] = []
        for src in args.src or [None]:
            if args.pair and args.extra is not None:
                results.append(measure_polyroute(src, args, upstream.port, work, False))
                print(json.dumps(results[-1]), flush=True)
            results.append(measure_polyroute(src, args, upstream.port, work))
            print(json.dumps(results[-1]), flush=True)
            if args.pair and args.extra is not None:
                pairs.append((results[-2], results[-1]))
    finally:
        procs.stop(upstream.proc)
    kind = (("stream" if args.stream else "chat") + (" keys" if args.keys else "")
            + (" redis" if args.redis else ""))
    print(f"\ninstructions per request ({kind}, c={args.connections}):")
    floor = next((r["per_request"] for r in results if r["target"] == "floor"), None)
    for result in results:
        ratio = f"  {result['per_request'] / floor:.2f}x the floor" if floor else ""
        cpu = (f"  {result['cpu_us_per_request']} µs CPU natively "
               f"({result['user_us_per_request']} in user space), "
               f"{result['instructions_per_us']} instructions/µs "
               f"({result['instructions_per_user_us']} per user-space µs)"
               if "cpu_us_per_request" in result else "")
        less_idle = (f"  ({result['per_request_less_idle']:,} less the idle rate, "
                     f"{result['idle_per_s']:,}/s)" if "idle_per_s" in result else "")
        print(f"  {result['per_request']:>12,}  {result['target']}  "
              f"({result['requests']} requests){ratio}{cpu}{less_idle}")
    for without, with_ in pairs:
        added = _int(with_["per_request"]) - _int(without["per_request"])
        line = f"  {with_['target']} adds {added:+,} instructions per request"
        if "instructions_per_us" in without:
            # The rate of the configuration without the extra: the work the extra adds is
            # the same kind of Python as the rest of the request.
            rate, user_rate = without["instructions_per_us"], without["instructions_per_user_us"]
            assert isinstance(rate, float) and isinstance(user_rate, float)
            line += (f" ≈ {added / rate:+.1f} µs at {rate} instructions/µs "
                     f"({added / user_rate:+.1f} µs at {user_rate} per user-space µs)")
        if "per_request_less_idle" in with_:
            less = (_int(with_["per_request_less_idle"])
                    - _int(without["per_request_less_idle"]))
            line += f"; less the idle rate: {less:+,}"
        print(line)
    return 0


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


if __name__ == "__main__":
    sys.exit(main())
