"""A circuit breaker per deployment.

closed ──(``failures`` transient failures within ``window_s``)──▶ open
open ──(``cooldown_s`` passed)──▶ half-open: exactly one request, the probe, goes through
half-open ──(probe succeeds)──▶ closed;  ──(probe fails)──▶ open again

A 429 opens the circuit too, for exactly the Retry-After the vendor gave (1 s when it gave
none), so no request anywhere on this gateway hammers a vendor that asked for quiet.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from polyroute.config.compiled import Circuit
from polyroute.errors import UpstreamError, UpstreamRateLimited

DEFAULT_RATE_LIMIT_PAUSE_S = 1.0
_PUBLISH_GRACE_S = 1.0  # our own fresh "open" may not have reached the shared store yet

Transition = Callable[[str, str, str, float], None]
"""(upstream, from state, to state, time)"""


class SharedCircuits(Protocol):
    """What replicas share so they agree (polyroute.state.redis implements it). Opening is
    published; the probe after a cool-down is claimed by exactly one replica; reads are
    batched by a background sync, never made on the request path."""

    async def claim_probe(self, upstream: str, ttl_s: float) -> bool: ...

    def publish_open(self, upstream: str, seconds: float) -> None: ...

    def publish_closed(self, upstream: str) -> None: ...

    async def open_circuits(self, upstreams: Iterable[str]) -> Mapping[str, float]:
        """Open circuits as any replica sees them: the seconds left of each cool-down (zero or
        less once a probe is due). An upstream missing from the answer is closed."""
        ...


@dataclass(slots=True)
class _State:
    failures: deque[float] = field(default_factory=deque)
    open_until: float = 0.0
    probing: bool = False
    opened_at: float = 0.0

    @property
    def name(self) -> str:
        if self.open_until == 0.0:
            return "closed"
        return "half_open" if self.probing else "open"


class Breakers:
    def __init__(
        self,
        clock: Callable[[], float],
        on_transition: Transition | None = None,
        shared: SharedCircuits | None = None,
        probe_ttl_s: float = 60.0,
    ):
        self._clock = clock
        self._states: dict[str, _State] = {}
        self._on_transition = on_transition
        self._shared = shared
        self._probe_ttl_s = probe_ttl_s
        self.history: deque[tuple[str, str, str, float]] = deque(maxlen=1000)
        """Recent transitions (upstream, from, to, time), for drills and the admin view."""

    async def allow(self, deployment: str) -> bool:
        """May a request go to this deployment now? Claims the probe when one is due (across
        replicas, when circuits are shared)."""
        state = self._states.get(deployment)
        if state is None or state.open_until == 0.0:
            return True
        now = self._clock()
        if now < state.open_until or state.probing:
            return False
        state.probing = True  # claimed locally before the await: no second local probe
        if self._shared is not None and not await self._shared.claim_probe(
                deployment, self._probe_ttl_s):
            state.probing = False
            state.open_until = now + 1.0  # another replica probes; look again in a second
            return False
        self._transition(deployment, "open", "half_open", now)
        return True

    def track(self, upstreams: Iterable[str]) -> None:
        """Upstreams to keep in sync even before this replica has sent them anything."""
        for upstream in upstreams:
            self._states.setdefault(upstream, _State())

    async def sync(self) -> None:
        """Adopt circuits other replicas opened; close ours that another replica's probe
        closed. Called periodically by the app when circuits are shared."""
        if self._shared is None:
            return
        remote = await self._shared.open_circuits(list(self._states))
        now = self._clock()
        for upstream, state in self._states.items():
            seconds = remote.get(upstream)
            if seconds is not None:
                until = now + max(seconds, 0.0)
                if state.open_until == 0.0 or until > state.open_until:
                    before = state.name
                    state.open_until, state.opened_at = until, now
                    self._transition(upstream, before, state.name, now)
            elif state.open_until and not state.probing and now - state.opened_at > (
                    _PUBLISH_GRACE_S):
                # Gone from the shared store: a probe elsewhere succeeded.
                self._transition(upstream, state.name, "closed", now)
                state.open_until = 0.0
                state.failures.clear()

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
        if not state.probing:
            # Closed: failures keep counting within their window, successes or not. Open: this
            # answer started before the circuit opened; only the probe's verdict counts.
            return
        self._transition(deployment, state.name, "closed", self._clock())
        if self._shared is not None:
            self._shared.publish_closed(deployment)
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
            state.opened_at = now
        elif error.transient or error.trigger == "auth":
            failures = state.failures
            failures.append(now)
            while failures and failures[0] < now - settings.window_s:
                failures.popleft()
            if state.probing or len(failures) >= settings.failures:
                state.open_until, state.probing = now + settings.cooldown_s, False
                state.opened_at = now
                failures.clear()
        else:
            self.release(deployment)
            return
        if state.name != before:
            self._transition(deployment, before, state.name, now)
        if state.open_until > now and self._shared is not None:
            self._shared.publish_open(deployment, state.open_until - now)

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
        if before == after:
            return
        self.history.append((deployment, before, after, now))
        if self._on_transition is not None:
            self._on_transition(deployment, before, after, now)
