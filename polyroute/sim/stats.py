"""Counters that tests read through GET /_sim/stats."""

from __future__ import annotations

import base64
from collections import Counter
from typing import Any

from polyroute.sim.faults import Fault


class SimStats:
    def __init__(self) -> None:
        self.active_requests = 0
        self._zero()

    def reset(self) -> None:
        # Requests still running keep their place in active_requests, or the
        # counter would go negative when they finish.
        self._zero()

    def _zero(self) -> None:
        self.requests_total = 0
        self.requests_by_path: Counter[str] = Counter()
        self.requests_by_model: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.status_codes: Counter[int] = Counter()
        self.streams_started = 0
        self.streams_completed = 0
        self.responses_cut_by_sim = 0
        self.streams_aborted_by_peer = 0
        self.requests_aborted_by_peer = 0
        self.last_request: dict[str, Any] | None = None
        self.last_request_body = b""
        """The exact bytes of the last request's body."""
        self.last_response_body: bytes | bytearray | None = None
        """The body bytes the simulator wrote for the last request (none for faults that
        damage a body), so tests can check a gateway relayed exactly those."""
        self.last_response: bytes | None = None
        """The bytes of the last answer of an endpoint that records it (the Responses API):
        tests compare what a client got through the gateway with what was sent."""

    def record_selection(self, model: str, fault: Fault | None) -> None:
        self.requests_by_model[model] += 1
        if fault is not None:
            self.faults[str(fault.name)] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "requests_by_path": dict(self.requests_by_path),
            "requests_by_model": dict(self.requests_by_model),
            "faults": dict(self.faults),
            "status_codes": {str(code): count for code, count in self.status_codes.items()},
            "streams_started": self.streams_started,
            "streams_completed": self.streams_completed,
            "responses_cut_by_sim": self.responses_cut_by_sim,
            "streams_aborted_by_peer": self.streams_aborted_by_peer,
            "requests_aborted_by_peer": self.requests_aborted_by_peer,
            "active_requests": self.active_requests,
            "last_request": self.last_request and {
                **self.last_request,
                "body_bytes": self.last_request_body.decode("utf-8", errors="replace")},
            "last_response_body": (None if self.last_response_body is None else
                                   bytes(self.last_response_body).decode("utf-8",
                                                                         errors="replace")),
            "last_response_base64": None if self.last_response is None
            else base64.b64encode(self.last_response).decode(),
        }
