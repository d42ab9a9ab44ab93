"""Where polyroute's CPU per request goes: cProfile over a fixed number of proxied requests.

    python bench/profile_request.py [--requests 20000] [--keys | --redis] [--stream] [--src TREE]
                                    [--extra YAML] [--top 40] [--out profile.pstats]

Starts the benchmark's mock upstream and ``polyroute serve`` (the bench config of
``run.py``) with cProfile switched on from the first measured request to the last, drives it
with wrk, and prints the functions that cost most, per request (tottime and cumtime in µs).
``--src`` runs another source tree (an older commit's worktree) the same way, so two profiles
can be compared. cProfile roughly doubles the time it measures; compare profiles with each
other, not with ``run.py``'s figures.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import pstats
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import payloads
import procs
import run
import targets

PROFILER = """
import cProfile, os, signal, sys
import time
# The event loop thread's CPU: wall time on a loaded machine charges preemption to whatever
# function happens to run.
profile = cProfile.Profile(time.thread_time)

def toggle(signum, frame):
    if getattr(toggle, "on", False):
        profile.disable()
        profile.dump_stats(os.environ["PROFILE_OUT"])
        toggle.on = False
    else:
        profile.enable()
        toggle.on = True

signal.signal(signal.SIGUSR1, toggle)
from polyroute.cli import main
sys.argv = ["polyroute", *sys.argv[1:]]
sys.exit(main())
"""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--keys", action="store_true", help="the polyroute-keys target's config")
    p.add_argument("--redis", action="store_true",
                   help="the polyroute-redis target's config (keys, limits in the local Redis)")
    p.add_argument("--stream", action="store_true")
    p.add_argument("--src", type=Path, default=None, help="run this source tree instead")
    p.add_argument("--extra", type=Path, default=None,
                   help="YAML appended to polyroute's config ({upstream} stands for the mock "
                        "upstream's base URL), as instructions.py's --extra")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--sort", default="tottime", choices=("tottime", "cumtime"))
    p.add_argument("--out", type=Path, default=None, help="also keep the pstats file here")
    return p.parse_args()


def _wrk_requests(url: str, connections: int, key: str, stream: bool, count: int,
                  work: Path) -> None:
    """Run wrk until about ``count`` requests were sent (it has no request limit: estimate
    the rate with a 2-second run, then run for the time ``count`` needs)."""
    script = Path(__file__).parent / "chat.lua"
    body = work / ("stream.json" if stream else "chat.json")
    body.write_bytes(payloads.request_body(stream))

    def run(seconds: float) -> int:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s",
             str(script), url, "--", str(body), key],
            capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("BENCH_JSON "):
                return int(json.loads(line.removeprefix("BENCH_JSON "))["requests"])
        raise RuntimeError(out)

    rate = run(2) / 2
    run(count / max(rate, 1.0))


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    # Under the bench's own work dir, not a private temp dir: nginx's workers run as another
    # user and must read the canned bodies.
    work = targets.BENCH_DIR / ".work" / "profile"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    upstream = targets.start_upstream(
        "nginx" if targets.nginx_available() else "python", work, None)
    profile_out = work / "profile.pstats"
    try:
        procs.wait_port(upstream.port, 30, upstream.proc)
        home = work / "polyroute"
        home.mkdir()
        extra = targets.extra_config(args.keys, args.redis)
        if args.extra is not None:
            extra += args.extra.read_text().replace("{upstream}",
                                                    f"http://127.0.0.1:{upstream.port}")
        config = home / "polyroute.yaml"
        config.write_text(targets.polyroute_config(upstream.port, home, extra))
        port = procs.free_port()
        env = {"BENCH_UPSTREAM_KEY": payloads.UPSTREAM_KEY,
               "BENCH_MASTER_KEY": targets.MASTER_KEY, "PROFILE_OUT": str(profile_out),
               "XDG_DATA_HOME": str(home / "data"), "XDG_STATE_HOME": str(home / "state")}
        with targets.polyroute_source(args.src):
            proc = procs.start("polyroute", [sys.executable, "-c", PROFILER, "serve",
                                             "--config", str(config), "--port", str(port)],
                               work / "polyroute.log", env, None, home)
        target = targets.Target("polyroute", proc, port, payloads.GATEWAY_CHAT_PATH,
                                payloads.GATEWAY_CHAT_PATH)
        if args.keys or args.redis:
            target = targets._with_key(target)
        procs.wait_port(port, 30, proc)
        print(f"probe: {run.probe(target, args.stream)}")
        url = target.url(args.stream)
        _wrk_requests(url, args.connections, target.client_key, args.stream, 2000, work)  # warm up
        time.sleep(1)
        before = _served(port)
        proc.popen.send_signal(signal.SIGUSR1)
        _wrk_requests(url, args.connections, target.client_key, args.stream, args.requests, work)
        time.sleep(1)  # let the ledger flusher catch up inside the profile
        proc.popen.send_signal(signal.SIGUSR1)
        served = _served(port) - before
        for _ in range(100):
            if profile_out.exists():
                break
            time.sleep(0.1)
        procs.stop(proc)
    finally:
        procs.stop(upstream.proc)
    stats = pstats.Stats(str(profile_out))
    if args.out is not None:
        shutil.copy(profile_out, args.out)
    _report(stats, served, args.sort, args.top)
    return 0


def _served(port: int) -> int:
    """Requests the gateway answered so far, from its own counter."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    body = conn.getresponse().read().decode()
    conn.close()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                   if line.startswith("polyroute_requests_total{")))


def _report(stats: pstats.Stats, served: int, sort: str, top: int) -> None:
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in raw.values())
    per = 1e6 / max(served, 1)
    print(f"{served} requests profiled; figures are µs per request (under cProfile)")
    rows = []
    for (file, line, name), (_cc, nc, tt, ct, _callers) in raw.items():
        rows.append((tt if sort == "tottime" else ct, tt, ct, nc, f"{_short(file)}:{line}({name})"))
    rows.sort(reverse=True)
    buf = io.StringIO()
    buf.write(f"total profiled CPU: {total * per:.1f} µs per request\n")
    buf.write(f"{'tottime':>8} {'cumtime':>8} {'calls/req':>9}  function\n")
    for _key, tt, ct, nc, where in rows[:top]:
        buf.write(f"{tt * per:8.2f} {ct * per:8.2f} {nc / max(served, 1):9.2f}  {where}\n")
    print(buf.getvalue())


def _short(path: str) -> str:
    for marker in ("site-packages/", "polyroute/", "lib/python3"):
        at = path.find(marker)
        if at >= 0:
            return path[at:]
    return path


if __name__ == "__main__":
    sys.exit(main())
