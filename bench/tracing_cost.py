"""CPU that tracing and the request log add per request (issue 13's ≤ 30 µs target).

    python bench/tracing_cost.py [--requests 20000] [--attempts 2]

Drives :class:`~polyroute.observability.tracing.OtelTracer` exactly as the engine does for
one request (``begin``, one ``attempt`` span per upstream attempt, ``observe`` at settle,
the ``traceparent`` read by the transport for each attempt), then exports every queued span
the way the drain task does: encoded to OTLP protobuf by the OTLP exporter's own encoder
(the HTTP POST itself is left out: it goes to the collector, and its cost is the kernel's).
Reported: process CPU per request on the request path, and for the export (in the gateway's
worker thread, but on the same cores). Also the request log's path (a deque append per sink)
and its flush (encode + redact). Tracing off costs one ``is None`` test per request and per
attempt: nothing measurable.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from polyroute.model.price import Price
from polyroute.model.record import Attempt, RequestRecord
from polyroute.model.upstream import Deployment, Endpoint
from polyroute.model.usage import Usage
from polyroute.observability.request_log import RequestLog, Sink
from polyroute.observability.tracing import OtelTracer


class Encoding(SpanExporter):
    """Encodes like the OTLP/HTTP exporter, and sends nowhere."""

    def __init__(self) -> None:
        self.bytes = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.bytes += len(encode_spans(spans).SerializeToString())
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class Nowhere:
    name = "nowhere"

    async def write(self, lines: Sequence[bytes]) -> bool:
        return True

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

    exporter = Encoding()
    tracer = OtelTracer(exporter, max_queue=n * (args.attempts + 1) + 1)
    for warm in range(200):  # imports, caches
        r = record(-warm)
        tracer.begin(r)
        tracer.attempt(r, deps[0], "first").end(Attempt("d", "v", 0.01))
        tracer.observe(r)
    tracer.processor.take()

    records = [record(i) for i in range(n)]
    t0 = time.process_time()
    for r in records:
        tracer.begin(r)
        for k, dep in enumerate(deps):
            span = tracer.attempt(r, dep, "first" if k == 0 else "failover")
            tracer.outgoing()
            note = Attempt(dep.name, dep.vendor, 0.01, None if k == len(deps) - 1
                           else "upstream_unavailable", 200 if k == len(deps) - 1 else 503)
            r.attempts.append(note)
            span.end(note)
        finish(r)
        tracer.observe(r)
    on_path = time.process_time() - t0

    t0 = time.process_time()
    while batch := tracer.processor.take():
        tracer.processor.export(batch)
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
    print(f"requests: {n}, attempts each: {args.attempts}, spans exported: "
          f"{tracer.processor.exported}, OTLP bytes/request: {exporter.bytes / n:.0f}")
    print(f"tracing, request path:   {on_path * us:6.1f} µs CPU per request")
    print(f"tracing, export (OTLP):  {export * us:6.1f} µs CPU per request")
    print(f"tracing, total:          {(on_path + export) * us:6.1f} µs CPU per request "
          "(target ≤ 30)")
    print(f"request log, path:       {log_path * us:6.2f} µs CPU per request")
    print(f"request log, flush:      {log_flush * us:6.1f} µs CPU per request")


if __name__ == "__main__":
    main()
