"""CPU that tracing and the request log add per request (issue 13's ≤ 30 µs target).

    python bench/tracing_cost.py [--requests 20000] [--attempts 2]

Drives :class:`~polyroute.observability.tracing.Tracer` exactly as the engine does for one
request (``begin``, one ``attempt`` span per upstream attempt, ``observe`` at settle, the
``traceparent`` read by the transport for each attempt), then encodes every queued span to
OTLP protobuf as the export task does (the HTTP POST itself is left out: one per 512
requests on a busy gateway, one per ``export_interval_s`` on a quiet one; ``instructions.py
--extra tracing.yaml --pair`` measures everything, end to end). Reported: process CPU per
request on the request path, and for the export (on the gateway's event loop, between
requests). Also the request log's path (a deque append per sink)
and its flush (encode + redact). Tracing off costs one ``is None`` test per request and per
attempt: nothing measurable.
"""

from __future__ import annotations

import argparse
import time
import timeit
from collections.abc import Sequence

from polyroute.model.price import Price
from polyroute.model.record import Attempt, RequestRecord
from polyroute.model.upstream import Deployment, Endpoint
from polyroute.model.usage import Usage
from polyroute.observability.request_log import Outcome, RequestLog, Sink
from polyroute.observability.tracing import Tracer


class Nowhere:
    name = "nowhere"

    async def write(self, lines: Sequence[bytes]) -> Outcome:
        return "ok"

    async def aclose(self) -> None:
        pass


def deployments(n: int) -> list[Deployment]:
    endpoint = Endpoint(vendor="openai", protocol="openai", base_url="http://127.0.0.1:1/v1",
                        headers={})
    return [Deployment(name=f"dep-{i}", vendor="openai", model="gpt-4o-mini", endpoint=endpoint,
                       price=Price(0.15, 0.6)) for i in range(n)]


def record(i: int) -> RequestRecord:
    return RequestRecord(f"req-{i}", time.time(), "chat", "chat",
                         traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")


def finish(r: RequestRecord) -> None:
    r.model_group, r.vendor, r.deployment, r.upstream_model = "chat", "openai", "dep-1", "m"
    r.usage = Usage(prompt_tokens=120, completion_tokens=40, total_tokens=160)
    r.cost_usd, r.latency_s, r.key_id, r.team = 0.000042, 0.02, "0123456789abcdef", "research"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--attempts", type=int, default=2)
    args = parser.parse_args()
    n, deps = args.requests, deployments(args.attempts)

    tracer = Tracer(max_queue=n + 1)
    for warm in range(200):  # caches
        r = record(-warm)
        tracer.begin(r)
        tracer.attempt(r, deps[0], "first").end(Attempt("d", "v", 0.01))
        tracer.observe(r)
    tracer.encode(tracer.take())

    # Records and attempt notes are made beforehand: only the tracer's own calls are timed.
    records = [record(i) for i in range(n)]
    last = len(deps) - 1
    notes = [Attempt(d.name, d.vendor, 0.01, None if k == last else "upstream_unavailable",
                     200 if k == last else 503) for k, d in enumerate(deps)]
    kinds = ["first", *["failover"] * last]
    for r in records:
        finish(r)
    t0 = time.process_time()
    for r in records:
        tracer.begin(r)
        for dep, kind, note in zip(deps, kinds, notes, strict=True):
            span = tracer.attempt(r, dep, kind)
            tracer.outgoing()
            span.end(note)
        tracer.observe(r)
    on_path = time.process_time() - t0
    for r in records:
        r.attempts = list(notes)

    t0 = time.process_time()
    size = spans = 0
    while batch := tracer.take():
        body, count = tracer.encode(batch)
        size, spans = size + len(body), spans + count
    export = time.process_time() - t0

    request_log = RequestLog([Nowhere()], queue_size=n + 1)
    t0 = time.process_time()
    for r in records:
        request_log.observe(r)
    log_path = time.process_time() - t0
    sink: Sink = request_log.sinks[0]
    t0 = time.process_time()
    while batch := sink.take():
        request_log.encode(batch)
    log_flush = time.process_time() - t0

    us = 1e6 / n
    calibration = min(timeit.repeat("sum(range(1000))", number=2000, repeat=5,
                                    timer=time.process_time)) / 2000 * 1e6
    print(f"calibration: sum(range(1000)) takes {calibration:.1f} µs of CPU on this machine now "
          "(≈ 8 µs on an idle 2020s laptop core)")
    print(f"requests: {n}, attempts each: {args.attempts}, spans encoded: {spans}, "
          f"OTLP bytes/request: {size / n:.0f}")
    print(f"tracing, request path:   {on_path * us:6.1f} µs CPU per request")
    print(f"tracing, export (OTLP):  {export * us:6.1f} µs CPU per request")
    print(f"tracing, total:          {(on_path + export) * us:6.1f} µs CPU per request "
          "(target ≤ 30)")
    print(f"request log, path:       {log_path * us:6.2f} µs CPU per request")
    print(f"request log, flush:      {log_flush * us:6.1f} µs CPU per request")


if __name__ == "__main__":
    main()
