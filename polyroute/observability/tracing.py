"""OpenTelemetry traces: a span per request, a child span per upstream attempt.

The engine calls :class:`Tracer` through its seam (``engine/observer.py``) and never imports
this module. Spans follow the GenAI semantic conventions (``gen_ai.*``) plus polyroute's own
attributes (``polyroute.*``: deployment, attempt kind and outcome, cost), and are exported
as OTLP/HTTP protobuf (``otlp.py``: the SDK costs ~30× the budget, see there).

On the request path a span is a few integers: ids from a seeded PRNG (only an attempt's is
written as hex, into the ``traceparent`` it sends upstream), ``time_ns()``
at its start and end, and a reference to the request's record (complete and never changed once the
request settled). Attributes are read from the record and encoded later, in batches, by the
export task; a full queue drops requests' spans and counts them. The W3C ``traceparent`` a
client sends makes the request's span its child, in its trace, sampled as it says.

Export: every ``export_interval_s``, or as soon as ``BATCH`` requests' spans are waiting,
whichever comes first; a round sends what was waiting when it began, at most ``BATCH``
requests per OTLP post, over one kept-alive connection. Spans that end during a round wait
for the next one: an exporter that looped until the queue was empty posted a trickle of a
few requests each, back to back, on a busy gateway (docs/benchmarks.md). The encoding runs
on the event loop, ``_CHUNK`` requests between two yields (≈ 0.5 ms): a worker thread took
the GIL from the loop all the same (for up to 5 ms at a time) and cost a hand-off of ≈ 60 µs
per post.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections import deque
from collections.abc import Mapping
from contextvars import ContextVar
from time import time_ns
from typing import Any

import aiohttp

from polyroute.model.record import Attempt, RequestRecord
from polyroute.model.upstream import Deployment
from polyroute.observability import otlp

log = logging.getLogger("polyroute.tracing")

BATCH = 512
_CHUNK = 64
"""Requests (their span and their attempts') per export post at most; as many waiting are
exported at once, without waiting for the interval."""
_NS = 1_000_000_000
OPERATION = {"chat": "chat", "embeddings": "embeddings"}
"""The record's endpoint → the GenAI ``gen_ai.operation.name``."""


_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


def parse_traceparent(header: str | None) -> tuple[str, str, bool] | None:
    """(trace id, parent span id, sampled) of a W3C ``traceparent`` (version 00, or a later
    one read as 00), ids as lower-case hex; None when absent or malformed: then a new trace
    starts, as the spec says. Ids stay text: they are only copied upstream until export."""
    if not header or len(header) < 55:
        return None
    parts = header.split("-")
    if len(parts) < 4:
        return None
    version, trace_id, span_id, flags = parts[0], parts[1], parts[2], parts[3]
    if (len(version) != 2 or version == "ff" or len(trace_id) != 32 or len(span_id) != 16
            or len(flags) != 2 or (version == "00" and len(parts) != 4)
            or not _HEX.issuperset(version + trace_id + span_id + flags)
            or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN):
        return None
    return trace_id, span_id, flags[1] in "13579bdf"  # the sampled bit


class _Attempt:
    """One attempt's span while it runs (the engine's ``AttemptTrace``) and after."""

    __slots__ = ("deployment", "end_ns", "kind", "note", "number", "span_id", "start_ns",
                 "traceparent")

    def __init__(self, deployment: Deployment, kind: str, number: int, span_id: bytes,
                 traceparent: str) -> None:
        self.deployment, self.kind, self.number, self.span_id = deployment, kind, number, span_id
        self.traceparent = traceparent
        self.start_ns = time_ns()
        self.end_ns = 0
        self.note: Attempt | None = None
        """Set when the attempt ended: from then on its ``traceparent`` is not sent."""

    def end(self, attempt: Attempt) -> None:
        # The context keeps referring to this attempt (no ContextVar reset and its token):
        # ``Tracer.outgoing`` sends nothing for an ended one.
        self.end_ns, self.note = time_ns(), attempt


class _Trace:
    __slots__ = ("attempts", "flags", "parent_id", "record", "sampled", "span_id",
                 "trace_bytes", "trace_id")

    def __init__(self, record: RequestRecord, trace_id: str, trace_bytes: bytes | None,
                 span_id: int, parent_id: str | None, sampled: bool) -> None:
        self.record, self.trace_id, self.span_id, self.parent_id = (
            record, trace_id, span_id, parent_id)
        self.trace_bytes = trace_bytes
        """The trace id as the export writes it, when this gateway drew it (else None: the
        export reads the client's hex)."""
        self.sampled = sampled
        """False: nothing is exported, but attempts still send the trace upstream."""
        self.flags = "-01" if sampled else "-00"
        self.attempts: list[_Attempt] = []


class _NoAttempt:
    __slots__ = ()

    def end(self, attempt: Attempt) -> None:
        pass


_NO_ATTEMPT = _NoAttempt()


class Tracer:
    """The engine's ``Tracer``. ``send`` posts one encoded export request (the OTLP/HTTP
    exporter; tests may pass their own)."""

    def __init__(self, *, endpoint: str = "", headers: Mapping[str, str] | None = None,
                 service_name: str = "polyroute", version: str = "",
                 sample_ratio: float = 1.0, max_queue: int = 8192,
                 export_interval_s: float = 1.0, timeout_s: float = 10.0) -> None:
        self._endpoint = endpoint
        self._headers = {**(headers or {}), "Content-Type": "application/x-protobuf"}
        self._resource: dict[str, otlp.AttrValue] = {"service.name": service_name,
                                                     "service.version": version,
                                                     "telemetry.sdk.name": "polyroute"}
        self._scope = ("polyroute", version)
        self._ratio = sample_ratio
        self._always = sample_ratio >= 1.0
        self._max = max_queue
        self._interval_s = export_interval_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._rng = random.Random(os.urandom(16))
        self._open: dict[str, _Trace] = {}
        """Request id → its trace, from ``begin`` to ``observe`` (sampled ones only)."""
        self._queue: deque[_Trace] = deque()
        self._full = asyncio.Event()
        """Set when ``BATCH`` requests' spans are waiting: export now, not at the interval."""
        self.outgoing_var: ContextVar[_Attempt | None] = ContextVar(
            "polyroute_traceparent", default=None)
        self.exported = self.dropped = self.failed = 0
        """Spans, since start."""
        self._encoder = otlp.Encoder()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._session: aiohttp.ClientSession | None = None

    # -- the engine's seam (the request path) ----------------------------------------------

    def begin(self, record: RequestRecord) -> None:
        bits = self._rng.getrandbits
        parent = parse_traceparent(record.traceparent) if record.traceparent else None
        if parent is not None:
            trace_id, parent_id, sampled = parent
            trace_bytes = None
        else:  # (an all-zero random id: one chance in 2^128)
            trace_bytes, parent_id = bits(128).to_bytes(16, "big"), None
            trace_id = trace_bytes.hex()
            sampled = self._always or self._rng.random() < self._ratio
        # The span id stays an integer until the export (one draw of 192 bits sliced into
        # both ids counted ≈ 400 instructions more under callgrind than two draws).
        self._open[record.request_id] = _Trace(record, trace_id, trace_bytes, bits(64),
                                               parent_id, sampled)

    def attempt(self, record: RequestRecord, deployment: Deployment,
                kind: str) -> _Attempt | _NoAttempt:
        trace = self._open.get(record.request_id)
        if trace is None:
            return _NO_ATTEMPT
        # bytes.hex, not an f-string's "{:016x}": the format-spec machinery counted ~2,000
        # more instructions per request under callgrind.
        span_id = self._rng.getrandbits(64).to_bytes(8, "big")
        attempt = _Attempt(deployment, kind, len(record.attempts) + 1, span_id,
                           f"00-{trace.trace_id}-{span_id.hex()}{trace.flags}")
        # Upstream calls from this context (a hedge runs in its own task's) send it.
        self.outgoing_var.set(attempt)
        if trace.sampled:
            trace.attempts.append(attempt)
        return attempt

    def observe(self, record: RequestRecord) -> None:
        trace = self._open.pop(record.request_id, None)
        if trace is None or not trace.sampled:
            return
        queue = self._queue
        if len(queue) >= self._max:
            self.dropped += 1 + len(trace.attempts)
            return
        queue.append(trace)
        if len(queue) == BATCH:
            self._full.set()

    def outgoing(self) -> str | None:
        """The ``traceparent`` of the attempt running in this context, for the upstream."""
        attempt = self.outgoing_var.get()
        if attempt is None or attempt.note is not None:  # none, or it ended
            return None
        return attempt.traceparent

    # -- export (off the request path) -----------------------------------------------------

    @property
    def waiting(self) -> int:
        """Finished requests whose spans wait for an export round."""
        return len(self._queue)

    def take(self, most: int = BATCH) -> list[_Trace]:
        """Up to ``most`` finished requests' traces, oldest first, off the queue."""
        queue = self._queue
        popleft = queue.popleft
        return [popleft() for _ in range(min(most, len(queue)))]

    def encode(self, batch: list[_Trace]) -> tuple[bytes, int]:
        """An ExportTraceServiceRequest of the batch's spans, and how many."""
        spans = self.spans(batch)
        return self._encoder.export_request(self._resource, self._scope, spans), len(spans)

    def spans(self, batch: list[_Trace]) -> list[bytes]:
        """Each encoded Span of the batch's requests, theirs and their attempts', as the
        ScopeSpans field it is exported in (``otlp.span_field``)."""
        encoder, spans = self._encoder, list[bytes]()
        append = spans.append
        for trace in batch:
            trace_id = trace.trace_bytes or bytes.fromhex(trace.trace_id)
            span_id = trace.span_id.to_bytes(8, "big")
            endpoint = trace.record.endpoint
            operation = OPERATION.get(endpoint, endpoint)
            append(_request_span(encoder, trace, trace_id, span_id, operation))
            for attempt in trace.attempts:  # (a list comprehension is a call more)
                append(_attempt_span(encoder, operation, trace_id, span_id, attempt))
        return spans

    async def _encode(self, batch: list[_Trace]) -> tuple[bytes, int]:
        """``encode``, yielding to the event loop every ``_CHUNK`` requests."""
        spans: list[bytes] = []
        for start in range(0, len(batch), _CHUNK):
            if start:
                await asyncio.sleep(0)
            spans.extend(self.spans(batch[start:start + _CHUNK]))
        return self._encoder.export_request(self._resource, self._scope, spans), len(spans)

    async def send(self, body: bytes) -> bool:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(self._endpoint, data=body,
                                          headers=self._headers) as response:
                if response.status < 300:
                    return True
                log.warning("traces: the collector answered HTTP %d", response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("traces: export to %s failed: %s", self._endpoint, exc)
        return False

    async def flush(self) -> None:
        """Export what is waiting now, in posts of at most ``BATCH`` requests' spans. What
        ends meanwhile waits for the next round (else a busy gateway posts a trickle)."""
        waiting = len(self._queue)
        while waiting > 0 and (batch := self.take(min(waiting, BATCH))):
            waiting -= len(batch)
            body, count = await self._encode(batch)
            if await self.send(body):
                self.exported += count
            else:
                self.failed += count

    async def _drain(self) -> None:
        full = self._full
        while not self._closing:
            full.clear()
            if len(self._queue) < BATCH:  # (a full batch that came during the last round: now)
                # The interval is counted from the end of the last round, so an export that
                # takes long never runs back to back with the next.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval_s):
                        await full.wait()
            try:
                await self.flush()
            except Exception:  # a bug here must not stop tracing for good
                log.exception("traces: export")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drain())

    async def aclose(self) -> None:
        if self._task is not None:
            # Not cancelled: a round in progress would lose the batch it took off the queue.
            self._closing = True
            self._full.set()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()
        if self._session is not None:
            await self._session.close()


_REQUEST_ID = otlp.Attr("polyroute.request_id")
_COST = otlp.Attr("polyroute.cost_usd")
_TTFT = otlp.Attr("polyroute.ttft_s")
_INPUT_TOKENS = otlp.Attr("gen_ai.usage.input_tokens")
_OUTPUT_TOKENS = otlp.Attr("gen_ai.usage.output_tokens")
_CACHED_TOKENS = otlp.Attr("gen_ai.usage.cache_read.input_tokens")
_REASONING_TOKENS = otlp.Attr("polyroute.usage.reasoning_tokens")
"""The request span's attributes whose values vary per request, their prefixes encoded once."""


def _request_span(encoder: otlp.Encoder, trace: _Trace, trace_id: bytes, span_id: bytes,
                  operation: str) -> bytes:
    r = trace.record
    # What repeats from request to request (name, kind, categorical attributes, status) is
    # one cached tail; the rest (ids, times, tokens, cost) is encoded each time.
    key = ("request", operation, r.requested_model, r.stream, r.status, len(r.attempts),
           r.model_group, r.vendor, r.deployment, r.upstream_model, r.key_id, r.team,
           r.route, r.error_class)
    tail = encoder.tails.get(key)
    if tail is None:
        tail = encoder.keep(key, encoder.tail(f"{operation} {r.requested_model}", otlp.SERVER,
                                              _request_attributes(r, operation),
                                              r.error_class is not None))
    start = int(r.started_at * _NS)
    end = start + int(r.latency_s * _NS)
    if trace.parent_id:
        head = otlp.HEAD_CHILD.pack(b"\x0a\x10", trace_id, b"\x12\x08", span_id, b"\x22\x08",
                                    bytes.fromhex(trace.parent_id), b"\x39", start, b"\x41",
                                    end)
    else:
        head = otlp.HEAD.pack(b"\x0a\x10", trace_id, b"\x12\x08", span_id, b"\x39", start,
                              b"\x41", end)
    parts = [head, tail, _REQUEST_ID.of_str(r.request_id)]
    if r.cost_usd is not None:
        parts.append(_COST.of_float(r.cost_usd))
    if r.ttft_s is not None:
        parts.append(_TTFT.of_float(r.ttft_s))
    usage = r.usage
    if usage is not None:
        parts.append(_INPUT_TOKENS.of_int(usage.prompt_tokens))
        parts.append(_OUTPUT_TOKENS.of_int(usage.completion_tokens))
        # The details, not Usage's properties: a Python call each.
        prompt, completion = usage.prompt_tokens_details, usage.completion_tokens_details
        if prompt is not None and prompt.cached_tokens:
            parts.append(_CACHED_TOKENS.of_int(prompt.cached_tokens))
        if completion is not None and completion.reasoning_tokens:
            parts.append(_REASONING_TOKENS.of_int(completion.reasoning_tokens))
    return otlp.span_field(b"".join(parts))


def _request_attributes(r: RequestRecord, operation: str) -> dict[str, otlp.AttrValue]:
    attrs: dict[str, otlp.AttrValue] = {
        "gen_ai.operation.name": operation, "gen_ai.request.model": r.requested_model,
        "polyroute.stream": r.stream, "http.response.status_code": r.status,
        "polyroute.attempts": len(r.attempts)}
    optional: tuple[tuple[str, Any], ...] = (
        ("polyroute.model_group", r.model_group), ("gen_ai.provider.name", r.vendor),
        ("polyroute.deployment", r.deployment), ("gen_ai.response.model", r.upstream_model),
        ("polyroute.key_id", r.key_id), ("polyroute.team", r.team),
        ("polyroute.route", r.route), ("error.type", r.error_class))
    attrs.update((k, v) for k, v in optional if v is not None)
    return attrs


def _attempt_span(encoder: otlp.Encoder, operation: str, trace_id: bytes, parent_id: bytes,
                  a: _Attempt) -> bytes:
    dep, note = a.deployment, a.note
    if note is not None:
        error, status = note.error_class, note.status
    else:
        error = status = None
    key = ("attempt", operation, dep.name, dep.vendor, dep.model, a.kind, a.number, error,
           status)
    tail = encoder.tails.get(key)
    if tail is None:
        attrs: dict[str, otlp.AttrValue] = {
            "gen_ai.operation.name": operation, "gen_ai.provider.name": dep.vendor,
            "gen_ai.request.model": dep.model, "polyroute.deployment": dep.name,
            "polyroute.attempt.kind": a.kind, "polyroute.attempt.number": a.number}
        if status is not None:
            attrs["polyroute.attempt.outcome"] = error or "ok"
            attrs["http.response.status_code"] = status
            if error is not None:
                attrs["error.type"] = error
        # Framed as a ScopeSpans field already: a span's length is its tail's plus the head's
        # fixed size, and protobuf takes the head's fields after the tail's.
        tail = encoder.keep(key, otlp.span_field(
            encoder.tail(f"{operation} {dep.model}", otlp.CLIENT, attrs, error is not None)
            + bytes(otlp.HEAD_CHILD.size))[:-otlp.HEAD_CHILD.size])
    # (The span's end from the engine's timed latency instead of a second time_ns() cost
    # ≈ 1,300 instructions more in the export than it saved on the path: reverted.)
    return tail + otlp.HEAD_CHILD.pack(
        b"\x0a\x10", trace_id, b"\x12\x08", a.span_id, b"\x22\x08", parent_id, b"\x39",
        a.start_ns, b"\x41", a.end_ns or a.start_ns)
