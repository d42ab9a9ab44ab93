"""How the engine reports what happened, without knowing who listens (metrics, request log)."""

from __future__ import annotations

from typing import Protocol

from polyroute.model.record import RequestRecord


class RequestObserver(Protocol):
    def observe(self, record: RequestRecord) -> None:
        """Called once per request when it ends. Must not block: no I/O on this path."""
