"""How the engine reports what happened, without knowing who listens (metrics, request logs,
traces). The engine imports no tracing library: a tracer is handed in through this seam, and
with none configured the engine only tests ``tracer is None``."""

from __future__ import annotations

from typing import Protocol

from polyroute.model.record import Attempt, RequestRecord
from polyroute.model.upstream import Deployment


class RequestObserver(Protocol):
    def observe(self, record: RequestRecord) -> None:
        """Called once per request when it ends. Must not block: no I/O on this path."""


class AttemptTrace(Protocol):
    def end(self, attempt: Attempt) -> None:
        """The attempt answered (first content for a stream) or failed, as ``attempt`` says."""


class Tracer(RequestObserver, Protocol):
    """Spans for a request and each of its upstream attempts. ``observe`` (at settle) ends
    the request's span. Like observers, no method may block."""

    def begin(self, record: RequestRecord) -> None:
        """The request has started (``record.started_at``); the engine is about to route it."""

    def attempt(self, record: RequestRecord, deployment: Deployment, kind: str) -> AttemptTrace:
        """An upstream attempt starts now. ``kind``: 'first', 'retry' (the same deployment
        again), 'failover' (another one), 'hedge' (started beside a slow one) or 'resume'
        (finishing a broken stream). Until it ends, upstream calls from this task carry the
        attempt's ``traceparent``."""
