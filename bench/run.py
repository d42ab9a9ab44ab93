"""One-command side-by-side benchmark: direct upstream, floor proxy, polyroute, LiteLLM.

    python bench/run.py [--duration 10] [--targets upstream,floor,polyroute,litellm]
                        [--out bench/results/latest.md]

Starts a mock upstream, then for each target in turn: start it, check that it relays the
canned response correctly, warm it up, run wrk for every scenario while reading the target's
CPU time from /proc, stop it. Prints a markdown report and writes it to --out. Targets run one
after another, never concurrently. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import payloads
import procs
import targets
from report import Result, Scenario, render
from targets import BENCH_DIR, REPO_DIR, Target

ALL_TARGETS = ("upstream", "floor", "polyroute", "polyroute-w2", "polyroute-keys",
               "polyroute-redis", "polyroute-redis-w2", "litellm")
DEFAULT_TARGETS = ("upstream", "floor", "polyroute", "litellm")
SCENARIOS = (
    Scenario(stream=False, connections=1),
    Scenario(stream=False, connections=16),
    Scenario(stream=False, connections=64),
    Scenario(stream=True, connections=16),
)
BASELINE_SUFFIX = "@base"
WRK_TIMEOUT_S = 10
SETTLE_S = 1.0

Starter = Callable[[Path, int, "str | None"], Target]
STARTERS: dict[str, Starter] = {
    "floor": targets.start_floor,
    "polyroute": targets.start_polyroute,
    "polyroute-keys": targets.start_polyroute_keys,
    "polyroute-redis": targets.start_polyroute_redis,
    "polyroute-w2": targets.start_polyroute_w2,
    "polyroute-redis-w2": targets.start_polyroute_redis_w2,
    "litellm": targets.start_litellm,
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run")
    p.add_argument("--warmup", type=int, default=3, help="seconds per warm-up wrk run")
    p.add_argument("--targets", default=",".join(DEFAULT_TARGETS),
                   help=f"comma-separated, of: {', '.join(ALL_TARGETS)}")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run all targets this many times, interleaved; report the median round",
    )
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "latest.md")
    p.add_argument("--work", type=Path, default=BENCH_DIR / ".work")
    p.add_argument(
        "--upstream",
        choices=("auto", "nginx", "python"),
        default="auto",
        help="mock upstream implementation (auto: nginx when installed)",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another polyroute source tree (a git worktree of an older commit): every "
             "polyroute target also runs from it, as '<target>@base', in the same rounds",
    )
    p.add_argument(
        "--scenarios",
        default="chat,stream",
        help="which kinds of scenario to run: chat (1, 16 and 64 connections), stream "
             "(16), or both; '--scenarios stream' compares the streaming path alone",
    )
    p.add_argument(
        "--pin",
        action="store_true",
        help="taskset: target on CPU 1, wrk and upstream on CPU 0 (off by default: see README)",
    )
    args = p.parse_args()
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(args.targets) - set(ALL_TARGETS)
    if unknown:
        p.error(f"unknown targets: {', '.join(sorted(unknown))}")
    kinds = {k.strip() for k in args.scenarios.split(",") if k.strip()}
    if not kinds or not kinds <= {"chat", "stream"}:
        p.error("--scenarios: a comma-separated list of chat and stream")
    args.scenarios = [s for s in SCENARIOS if ("stream" if s.stream else "chat") in kinds]
    if args.rounds < 1 or args.duration < 1:
        p.error("--rounds and --duration must be at least 1")
    if args.baseline is not None:
        if not (args.baseline / "polyroute" / "__init__.py").is_file():
            p.error(f"--baseline {args.baseline}: no polyroute package there")
        args.baseline = args.baseline.resolve()
        args.targets = [name for target in args.targets for name in (
            (target, f"{target}{BASELINE_SUFFIX}") if target.startswith("polyroute")
            else (target,))]
    return args


# --- probing --------------------------------------------------------------------------------


def _post(
    port: int, path: str, body: bytes, timeout: float, key: str = payloads.CLIENT_KEY
) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {key}",
        }
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()
    finally:
        conn.close()


def _expected_content() -> str:
    completion = json.loads(payloads.completion_body())
    content: str = completion["choices"][0]["message"]["content"]
    return content


def _sse_content(body: bytes) -> tuple[str, int, bool]:
    """Concatenated delta content, number of data events, and whether [DONE] was seen."""
    text, events, done = [], 0, False
    for line in body.decode().splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        events += 1
        if data == "[DONE]":
            done = True
            continue
        for choice in json.loads(data).get("choices") or []:
            text.append((choice.get("delta") or {}).get("content") or "")
    return "".join(text), events, done


def probe(target: Target, stream: bool) -> str:
    """Send one request and check that the canned upstream answer came back intact."""
    path = target.stream_path if stream else target.chat_path
    status, ctype, body = _post(target.port, path, payloads.request_body(stream), 30,
                                target.client_key)
    if status != 200:
        raise RuntimeError(f"{target.name}: HTTP {status}: {body[:300]!r}")
    if stream:
        content, events, done = _sse_content(body)
        summary = f"{events} SSE events, [DONE]={done}"
        ok = done and content == _expected_content()
    else:
        content = json.loads(body)["choices"][0]["message"]["content"]
        summary = f"{len(body)} byte JSON"
        ok = content == _expected_content()
    if not ok:
        raise RuntimeError(f"{target.name}: unexpected {ctype} response: {body[:300]!r}")
    return summary


def wait_ready(target: Target) -> None:
    procs.wait_port(target.port, target.ready_timeout, target.proc)
    deadline = time.monotonic() + target.ready_timeout
    while True:
        try:
            print(f"  {target.name}: chat OK ({probe(target, False)})")
            print(f"  {target.name}: stream OK ({probe(target, True)})")
            return
        except (OSError, http.client.HTTPException, RuntimeError, ValueError) as exc:
            if not target.proc.alive():
                raise RuntimeError(f"{target.name} died:\n{target.proc.log_tail()}") from exc
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target.name} not ready: {exc}") from exc
            time.sleep(0.5)


_BACKLOG = re.compile(rb"^polyroute_ledger_backlog_bytes(?:\{[^}]*\})? ([0-9.e+]+)$", re.M)
DRAIN_TIMEOUT_S = 300.0


def ledger_backlog(target: Target) -> float | None:
    """Spooled ledger bytes the target has not yet written to its database (summed over the
    series of the worker that answered), or None: the target has no ledger metric."""
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        body = conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    values = _BACKLOG.findall(body)
    return sum(float(v) for v in values) if values else None


def drain_ledger(target: Target) -> None:
    """Wait until the target's ledger flusher has caught up, so that one scenario's CPU is not
    charged with an earlier one's records. With ``--workers`` each poll reaches one worker at
    random, so three zero readings in a row are required."""
    zeros, deadline = 0, time.monotonic() + DRAIN_TIMEOUT_S
    while zeros < 3 and time.monotonic() < deadline:
        backlog = ledger_backlog(target)
        if backlog is None:
            return
        zeros = zeros + 1 if backlog == 0 else 0
        time.sleep(0.2)
    if zeros < 3:
        print(f"  {target.name}: the ledger did not catch up within {DRAIN_TIMEOUT_S:.0f} s")


# --- wrk ------------------------------------------------------------------------------------


def run_wrk(
    url: str, connections: int, seconds: int, body_file: Path, cpus: str | None,
    key: str = payloads.CLIENT_KEY,
) -> tuple[dict[str, float], str]:
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={WRK_TIMEOUT_S}s",
        "--latency",
        "-s",
        str(BENCH_DIR / "chat.lua"),
        url,
        "--",
        str(body_file),
        key,
    ]
    if cpus:
        argv = ["taskset", "-c", cpus, *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    match = re.search(r"^BENCH_JSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    stats: dict[str, float] = json.loads(match.group(1))
    return stats, done.stdout


def measure(
    target: Target,
    upstream: Target,
    scenario: Scenario,
    args: argparse.Namespace,
    raw: list[str],
) -> Result:
    body_file = args.work / "bodies" / ("stream.json" if scenario.stream else "chat.json")
    cpus = "0" if args.pin else None
    # CPU is read right around the wrk run so that idle time between runs is not charged;
    # the ledger is drained before (earlier records are not this run's) and after (writing
    # this run's records is part of what a request costs).
    drain_ledger(target)
    cpu_before = procs.cpu_seconds(target.proc.pid)
    up_before = procs.cpu_seconds(upstream.proc.pid)
    stats, output = run_wrk(
        target.url(scenario.stream), scenario.connections, args.duration, body_file, cpus,
        target.client_key,
    )
    drain_ledger(target)
    cpu = procs.cpu_seconds(target.proc.pid) - cpu_before
    up_cpu = procs.cpu_seconds(upstream.proc.pid) - up_before
    raw.append(f"## {target.name} {scenario.label}\n{output}")
    errors = sum(int(v) for k, v in stats.items() if k.startswith("errors_"))
    return Result(
        target=target.name,
        scenario=scenario,
        requests=int(stats["requests"]),
        seconds=stats["duration_us"] / 1e6,
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        cpu_s=cpu,
        upstream_cpu_s=up_cpu,
        errors=errors,
    )


def warm_up(target: Target, args: argparse.Namespace) -> None:
    cpus = "0" if args.pin else None
    for stream in (False, True):
        body = args.work / "bodies" / ("stream.json" if stream else "chat.json")
        run_wrk(target.url(stream), 16, args.warmup, body, cpus, target.client_key)


def bench_target(
    target: Target, upstream: Target, args: argparse.Namespace, raw: list[str]
) -> list[Result]:
    wait_ready(target)
    warm_up(target, args)
    results = []
    for scenario in args.scenarios:
        time.sleep(SETTLE_S)
        result = measure(target, upstream, scenario, args, raw)
        print(
            f"  {target.name:9} {scenario.label:12} {result.rps:8,.0f} rps  "
            f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
            f"cpu {result.cpu_ms_per_request:.3f} ms/req  errors {result.errors}"
        )
        results.append(result)
    return results


# --- report metadata ------------------------------------------------------------------------


def _command_output(argv: list[str]) -> str:
    """First line argv prints on stdout or stderr (nginx -v uses stderr), or "" on failure."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if lines else ""


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _git_revision() -> str:
    rev = _command_output(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"])
    dirty = _command_output(["git", "-C", str(REPO_DIR), "status", "--porcelain", "polyroute"])
    return (rev or "?") + (" (polyroute/ has uncommitted changes)" if dirty else "")


def metadata(
    args: argparse.Namespace, upstream_kind: str, litellm: str | None, loads: list[str]
) -> list[tuple[str, str]]:
    upstream_desc = {
        "nginx": f"nginx ({_command_output(['nginx', '-v'])}), 1 worker, canned bodies",
        "python": "bench/mock_upstream.py (raw asyncio on uvloop), canned bodies",
    }[upstream_kind]
    return [
        ("date", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("machine", f"{os.cpu_count()} CPUs, {_cpu_model()}, {platform.release()}"),
        ("python", platform.python_version()),
        ("wrk", _command_output(["wrk", "-v"]).split(" Copyright")[0]),
        ("mock upstream", upstream_desc),
        ("polyroute", _git_revision()),
        ("LiteLLM", litellm or "not run"),
        (
            "method",
            f"wrk -t1, {args.duration}s per run after {args.warmup}s warm-ups, "
            f"timeout {WRK_TIMEOUT_S}s, ~1 KB request body, {args.rounds} round(s)",
        ),
        ("pinning", "target on CPU 1, wrk and upstream on CPU 0" if args.pin else "none"),
        ("load average before each target", "; ".join(loads)),
    ]


# --- main -----------------------------------------------------------------------------------


def prepare_work(work: Path) -> None:
    (work / "logs").mkdir(parents=True, exist_ok=True)
    bodies = work / "bodies"
    bodies.mkdir(exist_ok=True)
    (bodies / "chat.json").write_bytes(payloads.request_body(False))
    (bodies / "stream.json").write_bytes(payloads.request_body(True))


def choose_upstream(requested: str) -> str:
    if requested == "auto":
        return "nginx" if targets.nginx_available() else "python"
    return str(requested)


def run_one(
    name: str, args: argparse.Namespace, upstream: Target, notes: list[str], raw: list[str]
) -> list[Result]:
    if name == "upstream":
        return bench_target(upstream, upstream, args, raw)
    base = name.endswith(BASELINE_SUFFIX)
    starter = STARTERS[name.removesuffix(BASELINE_SUFFIX)]
    with targets.polyroute_source(args.baseline if base else None):
        target = starter(args.work, upstream.port, "1" if args.pin else None)
    target.name = name
    try:
        return bench_target(target, upstream, args, raw)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"  {name} FAILED: {exc}", file=sys.stderr)
        notes.append(f"{name} failed: {str(exc).splitlines()[0]} (log: {target.proc.log})")
        return []
    finally:
        procs.stop(target.proc)


def run_targets(
    args: argparse.Namespace, upstream: Target, notes: list[str], loads: list[str], raw: list[str]
) -> list[Result]:
    # Rounds interleave the targets so that slow drifts in background load hit all of them.
    runs: list[Result] = []
    for round_no in range(1, args.rounds + 1):
        for name in args.targets:
            print(f"== {name} (round {round_no}/{args.rounds})")
            loads.append(f"{name} {os.getloadavg()[0]:.2f}")
            runs += run_one(name, args, upstream, notes, raw)
    return runs


def main() -> int:
    args = parse_args()
    # SIGTERM unwinds like Ctrl-C, so the finally blocks still stop every process we started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    args.work = args.work.resolve()
    prepare_work(args.work)
    notes: list[str] = []
    litellm_version = None
    if "litellm" in args.targets:
        try:
            litellm_version = targets.ensure_litellm(args.work)
            print(f"LiteLLM {litellm_version}")
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"LiteLLM unavailable: {exc}", file=sys.stderr)
            notes.append(f"LiteLLM could not be installed, not measured: {exc}")
            args.targets.remove("litellm")
    if "polyroute" in args.targets and not targets.polyroute_available():
        print("polyroute serve is not runnable yet: skipping it", file=sys.stderr)
        notes.append("polyroute was not runnable (`polyroute serve --help` failed): not measured")
        args.targets.remove("polyroute")
    upstream_kind = choose_upstream(args.upstream)
    loads: list[str] = []
    raw: list[str] = []
    upstream = targets.start_upstream(upstream_kind, args.work, "0" if args.pin else None)
    try:
        wait_ready(upstream)
        results = run_targets(args, upstream, notes, loads, raw)
    finally:
        procs.stop(upstream.proc)
    text = render(results, metadata(args, upstream_kind, litellm_version, loads), notes)
    print()
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    # Full wrk output for each run, for when a figure looks odd (gitignored).
    args.out.with_suffix(".raw").write_text("\n".join(raw))
    print(f"wrote {args.out}")
    return 1 if notes and not results else 0


if __name__ == "__main__":
    sys.exit(main())
