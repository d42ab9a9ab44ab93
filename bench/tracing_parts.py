"""Instructions each part of tracing costs per request, counted by callgrind (load-proof).

    python bench/tracing_parts.py [--requests 4000] [--rounds 100] [--src TREE]

Runs the tracer as the engine drives it for a request of one attempt (``begin``, ``attempt``,
the transport's ``outgoing``, ``end``, ``observe``) in processes under ``valgrind
--tool=callgrind``, and reports per request: the request path, the encoding of its two spans,
and one export round (``flush``: take, encode, one OTLP/HTTP POST to a receiver in another
process). Each figure is the difference of two whole-process counts that differ only in the
part (same records made, same imports), divided by how many times it ran. So a request on a
gateway that posts every ``n`` requests costs ``path + encode + round / n`` (n = 512 when busy,
requests per ``export_interval_s`` when not). ``--src``: another tree (a worktree of an older
commit) measured the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import procs

RECORDS = 4200


def _part(part: str, n: int, endpoint: str) -> None:
    """Run in the child: ``part`` ``n`` times after an identical setup."""
    import tracing_cost as tc  # (only the child imports polyroute)

    from polyroute.model.record import Attempt, RequestRecord
    from polyroute.observability.tracing import Tracer

    deps = tc.deployments(1)
    note = Attempt(deps[0].name, deps[0].vendor, 0.01, None, 200)
    tracer = Tracer(endpoint=endpoint, max_queue=10 * RECORDS)
    records = [tc.record(i) for i in range(RECORDS)]
    for r in records:
        tc.finish(r)
        r.traceparent = None  # as the benchmark's client: no traceparent of its own

    def path(batch: list[RequestRecord]) -> None:
        for r in batch:
            tracer.begin(r)
            span = tracer.attempt(r, deps[0], "first")
            tracer.outgoing()
            r.attempts.append(note)
            span.end(note)
            tracer.observe(r)

    def encode_all() -> None:
        while batch := tracer.take():
            tracer.encode(batch)

    path(records[:200])
    encode_all()  # the encoder's caches, warm
    if part in ("path", "encode"):
        path(records[200:200 + n])
        if part == "encode":
            encode_all()
        return

    async def rounds() -> None:
        path(records[200:201])
        await tracer.flush()  # the connection, open
        for i in range(n):
            path(records[201 + i:202 + i])
            await tracer.flush()
        await tracer.aclose()

    try:
        import uvloop  # as the gateway runs
    except ImportError:
        asyncio.run(rounds())
    else:
        uvloop.run(rounds())


def _count(part: str, n: int, endpoint: str, tree: Path, work: Path) -> int:
    out = work / f"callgrind.{part}.{n}"
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONMALLOC": "malloc",
           "PYTHONPATH": os.pathsep.join([str(tree), str(Path(__file__).parent)])}
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                    sys.executable, __file__, "--child", part, str(n), endpoint],
                   env=env, check=True, capture_output=True)
    return max(int(line.split()[1]) for line in out.read_text().splitlines()
               if line.startswith("totals:"))


RECEIVER = """
import sys
from aiohttp import web
async def answer(request):
    await request.read()
    return web.Response(body=b"", content_type="application/x-protobuf")
app = web.Application()
app.router.add_post("/v1/traces", answer)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _part(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=4000)
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--src", type=Path, default=Path(__file__).resolve().parent.parent)
    args = p.parse_args()
    port = procs.free_port()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        receiver = procs.start("receiver", [sys.executable, "-c", RECEIVER, str(port)],
                               work / "receiver.log")
        try:
            procs.wait_port(port, 30, receiver)
            endpoint = f"http://127.0.0.1:{port}/v1/traces"
            n, rounds = args.requests, args.rounds
            runs = (("path", 0), ("path", n), ("encode", n), ("round", 0), ("round", rounds))
            with ThreadPoolExecutor(2) as pool:  # each valgrind runs on one core
                counts = dict(zip(runs, pool.map(
                    lambda run: _count(*run, endpoint, args.src, work), runs), strict=True))
        finally:
            procs.stop(receiver)
    path = (counts["path", n] - counts["path", 0]) / n
    encode = (counts["encode", n] - counts["path", n]) / n
    one_round = (counts["round", rounds] - counts["round", 0]) / rounds - path
    print(f"instructions per request ({args.src}):")
    print(f"  request path (1 attempt)      {path:>10,.0f}")
    print(f"  encoding its 2 spans          {encode:>10,.0f}")
    print(f"  one export round (1 request)  {one_round:>10,.0f}  (spread over n requests)")
    for per in (512, 100, 20):
        print(f"  total, {per:>3} requests a round   {path + encode + one_round / per:>10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
