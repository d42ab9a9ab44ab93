"""A circuit breaker per deployment.

closed ──(``failures`` transient failures within ``window_s``)──▶ open
open ──(``cooldown_s`` passed)──▶ half-open: exactly one request, the probe, goes through
half-open ──(probe succeeds)──▶ closed;  ──(probe fails)──▶ open again

A 429 opens the circuit too, for exactly the Retry-After the vendor gave (1 s when it gave
none), so no request anywhere on this gateway hammers a vendor that asked for quiet.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from polyroute.config.compiled import Circuit
from polyroute.errors import UpstreamError, UpstreamRateLimited

DEFAULT_RATE_LIMIT_PAUSE_S = 1.0

Transition = Callable[[str, str, str, float], None]
"""(deployment, from state, to state, time)"""


@dataclass(slots=True)
class _State:
    failures: deque[float] = field(default_factory=deque)
    open_until: float = 0.0
    probing: bool = False

    @property
    def name(self) -> str:
        if self.open_until == 0.0:
            return "closed"
        return "half_open" if self.probing else "open"


class Breakers:
    def __init__(self, clock: Callable[[], float], on_transition: Transition | None = None):
        self._clock = clock
        self._states: dict[str, _State] = {}
        self._on_transition = on_transition

    def allow(self, deployment: str) -> bool:
        """May a request go to this deployment now? Claims the probe when one is due."""
        state = self._states.get(deployment)
        if state is None or state.open_until == 0.0:
            return True
        now = self._clock()
        if now < state.open_until or state.probing:
            return False
        state.probing = True
        self._transition(deployment, "open", "half_open", now)
        return True

    def blocked(self, deployment: str) -> bool:
        """Would ``allow`` refuse? Asks without claiming a probe."""
        state = self._states.get(deployment)
        if state is None or state.open_until == 0.0:
            return False
        return self._clock() < state.open_until or state.probing

    def success(self, deployment: str) -> None:
        state = self._states.get(deployment)
        if state is None:
            return
        if state.open_until != 0.0:
            self._transition(deployment, state.name, "closed", self._clock())
        state.open_until, state.probing = 0.0, False
        state.failures.clear()

    def failure(self, deployment: str, error: UpstreamError, settings: Circuit) -> None:
        if not settings.enabled:
            return
        now = self._clock()
        state = self._states.setdefault(deployment, _State())
        before = state.name
        if isinstance(error, UpstreamRateLimited):
            pause = error.retry_after if error.retry_after is not None else (
                DEFAULT_RATE_LIMIT_PAUSE_S)
            state.open_until, state.probing = max(state.open_until, now + pause), False
        elif error.transient or error.trigger == "auth":
            failures = state.failures
            failures.append(now)
            while failures and failures[0] < now - settings.window_s:
                failures.popleft()
            if state.probing or len(failures) >= settings.failures:
                state.open_until, state.probing = now + settings.cooldown_s, False
                failures.clear()
        else:
            self.release(deployment)
            return
        if state.name != before:
            self._transition(deployment, before, state.name, now)

    def release(self, deployment: str) -> None:
        """A probe that ended without a verdict (cancelled, or refused as a bad request): let
        the next request probe instead."""
        state = self._states.get(deployment)
        if state is not None and state.probing:
            state.probing = False
            self._transition(deployment, "half_open", "open", self._clock())

    def reopens_in(self, deployments: Iterable[str]) -> float | None:
        now = self._clock()
        waits = [s.open_until - now for d in deployments
                 if (s := self._states.get(d)) is not None and s.open_until > now]
        return min(waits) if waits else None

    def state(self, deployment: str) -> str:
        state = self._states.get(deployment)
        return state.name if state is not None else "closed"

    def _transition(self, deployment: str, before: str, after: str, now: float) -> None:
        if self._on_transition is not None and before != after:
            self._on_transition(deployment, before, after, now)
