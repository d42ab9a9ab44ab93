"""OpenTelemetry traces: a span per request, a child span per upstream attempt.

The engine calls :class:`OtelTracer` through its ``Tracer`` seam (``engine/observer.py``) and
never imports OpenTelemetry; this module is imported only when ``tracing.enabled`` (the
``otel`` extra). Spans follow the GenAI semantic conventions (``gen_ai.*``) plus polyroute's
own attributes (``polyroute.*``: deployment, attempt kind and outcome, cost).

Export is off the request path: a finished span is appended to a bounded deque (dropped and
counted when it is full); a task on the event loop hands batches to the OTLP/HTTP exporter
in a worker thread every ``export_interval_s``. The SDK's ``BatchSpanProcessor`` would do the
same with a thread per provider and no drop counter we can export.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.trace import Span as ApiSpan

from polyroute.model.record import Attempt, RequestRecord
from polyroute.model.upstream import Deployment

log = logging.getLogger("polyroute.tracing")

_BATCH = 512
_NS = 1_000_000_000
OPERATION = {"chat": "chat", "embeddings": "embeddings"}
"""The record's endpoint → the GenAI ``gen_ai.operation.name``."""


def parse_traceparent(header: str | None) -> Context | None:
    """A W3C ``traceparent`` (version 00, or a later one read as 00) as a parent context;
    None when absent or malformed (a bad header starts a new trace, as the spec says)."""
    if not header or len(header) < 55:
        return None
    parts = header.strip().split("-")
    if len(parts) < 4:
        return None
    version, trace_id, span_id, flags = parts[0], parts[1], parts[2], parts[3]
    if (len(version) != 2 or version == "ff" or len(trace_id) != 32 or len(span_id) != 16
            or len(flags) != 2 or (version == "00" and len(parts) != 4)):
        return None
    try:
        tid, sid, fl = int(trace_id, 16), int(span_id, 16), int(flags, 16)
        int(version, 16)
    except ValueError:
        return None
    if tid == 0 or sid == 0:
        return None
    parent = SpanContext(tid, sid, is_remote=True, trace_flags=TraceFlags(fl & 1))
    return set_span_in_context(NonRecordingSpan(parent))


def traceparent(span: ApiSpan) -> str:
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags) & 1:02x}"


class QueueProcessor(SpanProcessor):
    """Finished spans into a bounded deque; :meth:`drain` exports them in a thread."""

    def __init__(self, exporter: SpanExporter, max_queue: int) -> None:
        self._exporter = exporter
        self._queue: deque[ReadableSpan] = deque()
        self._max = max_queue
        self.dropped = 0
        self.exported = 0
        self.failed = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        if len(self._queue) >= self._max:
            self.dropped += 1
            return
        self._queue.append(span)

    def take(self) -> list[ReadableSpan]:
        queue = self._queue
        batch: list[ReadableSpan] = []
        while queue and len(batch) < _BATCH:
            batch.append(queue.popleft())
        return batch

    def export(self, batch: Sequence[ReadableSpan]) -> None:
        """Runs in a worker thread."""
        try:
            result = self._exporter.export(batch)
        except Exception as exc:  # the exporter's own errors: never the gateway's
            log.warning("traces: export of %d spans failed: %s", len(batch), exc)
            self.failed += len(batch)
            return
        if result is SpanExportResult.SUCCESS:
            self.exported += len(batch)
        else:
            self.failed += len(batch)

    async def drain(self, interval_s: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = self.take()
            if batch:
                await loop.run_in_executor(None, self.export, batch)
            if len(self._queue) < _BATCH:
                await asyncio.sleep(interval_s)

    async def flush(self) -> None:
        loop = asyncio.get_running_loop()
        while batch := self.take():
            await loop.run_in_executor(None, self.export, batch)

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class _AttemptSpan:
    __slots__ = ("_cv", "_span", "_token")

    def __init__(self, span: ApiSpan, cv: ContextVar[str | None]) -> None:
        self._span, self._cv = span, cv
        self._token = cv.set(traceparent(span))

    def end(self, attempt: Attempt) -> None:
        span = self._span
        span.set_attributes({
            "polyroute.attempt.outcome": attempt.error_class or "ok",
            "http.response.status_code": attempt.status,
        })
        if attempt.error_class is not None:
            span.set_attribute("error.type", attempt.error_class)
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        with contextlib.suppress(ValueError):  # ended from another context: it dies with it
            self._cv.reset(self._token)


class _NoAttempt:
    __slots__ = ()

    def end(self, attempt: Attempt) -> None:
        pass


_NO_ATTEMPT = _NoAttempt()


class OtelTracer:
    """The engine's ``Tracer`` over the OpenTelemetry SDK."""

    def __init__(self, exporter: SpanExporter, *, service_name: str = "polyroute",
                 version: str = "", sample_ratio: float = 1.0, max_queue: int = 8192,
                 export_interval_s: float = 1.0) -> None:
        self.processor = QueueProcessor(exporter, max_queue)
        self._interval_s = export_interval_s
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": service_name,
                                      "service.version": version}),
            sampler=ParentBased(TraceIdRatioBased(sample_ratio)))
        self._provider.add_span_processor(self.processor)
        self._tracer = self._provider.get_tracer("polyroute", version)
        self._open: dict[str, ApiSpan] = {}
        """Request id → its span, from ``begin`` to ``observe``."""
        self._outgoing: ContextVar[str | None] = ContextVar("polyroute_traceparent",
                                                            default=None)
        self._task: asyncio.Task[None] | None = None

    # -- the engine's seam -------------------------------------------------------------

    def begin(self, record: RequestRecord) -> None:
        operation = OPERATION.get(record.endpoint, record.endpoint)
        span = self._tracer.start_span(
            f"{operation} {record.requested_model}",
            context=parse_traceparent(record.traceparent), kind=SpanKind.SERVER,
            start_time=int(record.started_at * _NS),
            attributes={"gen_ai.operation.name": operation,
                        "gen_ai.request.model": record.requested_model,
                        "polyroute.request_id": record.request_id,
                        "polyroute.stream": record.stream})
        self._open[record.request_id] = span

    def attempt(self, record: RequestRecord, deployment: Deployment,
                kind: str) -> _AttemptSpan | _NoAttempt:
        parent = self._open.get(record.request_id)
        if parent is None:
            return _NO_ATTEMPT
        operation = OPERATION.get(record.endpoint, record.endpoint)
        span = self._tracer.start_span(
            f"{operation} {deployment.model}", context=set_span_in_context(parent),
            kind=SpanKind.CLIENT,
            attributes={"gen_ai.operation.name": operation,
                        "gen_ai.provider.name": deployment.vendor,
                        "gen_ai.request.model": deployment.model,
                        "polyroute.deployment": deployment.name,
                        "polyroute.attempt.kind": kind,
                        "polyroute.attempt.number": len(record.attempts) + 1})
        return _AttemptSpan(span, self._outgoing)

    def observe(self, record: RequestRecord) -> None:
        span = self._open.pop(record.request_id, None)
        if span is None:
            return
        attributes: dict[str, str | int | float | bool] = {
            "http.response.status_code": record.status,
            "polyroute.attempts": len(record.attempts),
        }
        if record.model_group is not None:
            attributes["polyroute.model_group"] = record.model_group
        if record.vendor is not None:
            attributes["gen_ai.provider.name"] = record.vendor
        if record.deployment is not None:
            attributes["polyroute.deployment"] = record.deployment
        if record.upstream_model is not None:
            attributes["gen_ai.response.model"] = record.upstream_model
        usage = record.usage
        if usage is not None:
            attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
            attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
            if usage.cached_tokens:
                attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
            if usage.reasoning_tokens:
                attributes["polyroute.usage.reasoning_tokens"] = usage.reasoning_tokens
        if record.cost_usd is not None:
            attributes["polyroute.cost_usd"] = record.cost_usd
        if record.ttft_s is not None:
            attributes["polyroute.ttft_s"] = record.ttft_s
        if record.key_id is not None:
            attributes["polyroute.key_id"] = record.key_id
        if record.team is not None:
            attributes["polyroute.team"] = record.team
        if record.route is not None:
            attributes["polyroute.route"] = record.route
        span.set_attributes(attributes)
        if record.error_class is not None:
            span.set_attribute("error.type", record.error_class)
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=int((record.started_at + record.latency_s) * _NS))

    # -- the transport's hook, and the app's lifecycle -----------------------------------

    def outgoing(self) -> Mapping[str, str] | None:
        """The ``traceparent`` of the attempt running in this context, for the upstream."""
        value = self._outgoing.get()
        return None if value is None else {"traceparent": value}

    @classmethod
    def otlp(cls, endpoint: str, headers: Mapping[str, str], **options: Any) -> OtelTracer:
        """Exporting to an OTLP/HTTP (protobuf) collector at ``endpoint``."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return cls(OTLPSpanExporter(endpoint=endpoint, headers=dict(headers)), **options)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self.processor.drain(self._interval_s))

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.processor.flush()
        await asyncio.get_running_loop().run_in_executor(None, self._provider.shutdown)
