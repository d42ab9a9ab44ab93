"""A circuit breaker per deployment.

closed ──(of its last ``request_volume`` requests within ``window_s``, at least ``failures``
          and at least ``failure_rate`` of them failed)──▶ open
open ──(``cooldown_s`` passed)──▶ half-open: exactly one request, the probe, goes through
half-open ──(probe succeeds)──▶ closed;  ──(probe fails)──▶ open again

Evidence is counted per client request, not per attempt: the attempt loop says whether an
outcome is a request's first at this deployment (``counted``), so five retries of one request
are one failure. Only failures that say the deployment is unwell count (transient errors and a
refused key); refusals that are answers (400s, content filter, context window) and failures
the client caused never reach :meth:`Breakers.failure` as evidence.

A 429 opens the circuit too, for exactly the Retry-After the vendor gave (1 s when it gave
none), so no request anywhere on this gateway hammers a vendor that asked for quiet. Such a
pause is marked ``paused``: the attempt loop's panic mode (every candidate open) never
overrides it, while it does override a circuit opened by failures.
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

    def publish_open(self, upstream: str, seconds: float, paused: bool = False) -> None:
        """``paused``: opened by a 429 for its Retry-After, which no replica may override."""
        ...

    def publish_closed(self, upstream: str) -> None: ...

    async def open_circuits(self, upstreams: Iterable[str]) -> Mapping[str, tuple[float, bool]]:
        """Open circuits as any replica sees them: the seconds left of each cool-down (zero or
        less once a probe is due), and whether it is a 429's pause. An upstream missing from
        the answer is closed."""
        ...


_MAX_UNTRACKED = 4096
"""Closed circuits kept for upstreams outside the config ('<vendor>/<model>' names are chosen by
clients): beyond this the oldest closed one is forgotten, so names cannot exhaust memory."""
@dataclass(slots=True)
class _Window:
    """The outcomes of the deployment's most recent requests (at most ``request_volume``, none
    older than ``window_s``): a deployment healthy a moment ago still opens within a few failed
    requests once it goes down, and one failing now and then never does."""

    outcomes: deque[tuple[float, bool]] = field(default_factory=deque)
    """(time, failed)"""

    def add(self, now: float, settings: Circuit, failed: bool) -> None:
        outcomes = self.outcomes
        outcomes.append((now, failed))
        while len(outcomes) > max(settings.request_volume, settings.failures) or (
                outcomes[0][0] <= now - settings.window_s):
            outcomes.popleft()

    def counts(self) -> tuple[int, int]:
        return len(self.outcomes), sum(failed for _, failed in self.outcomes)

    def interleaved(self) -> bool:
        """Was any request answered after the first failure?"""
        failed_yet = False
        for _, failed in self.outcomes:
            if failed:
                failed_yet = True
            elif failed_yet:
                return True
        return False


@dataclass(slots=True)
class _State:
    window: _Window = field(default_factory=_Window)
    open_until: float = 0.0
    probing: bool = False
    opened_at: float = 0.0
    paused: bool = False
    """Opened by a 429 for its Retry-After, not by failures."""
    last_failure: float = float("-inf")
    last_success: float = float("-inf")
    flaky: bool = False
    """When the circuit opened: did it still answer between its failures?"""

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
        self._tracked: set[str] = set()
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
            self._tracked.add(upstream)
            self._states.setdefault(upstream, _State())

    def _state(self, deployment: str) -> _State:
        state = self._states.get(deployment)
        if state is None:
            if len(self._states) - len(self._tracked) >= _MAX_UNTRACKED:
                stale = next((name for name, s in self._states.items()
                              if s.open_until == 0.0 and name not in self._tracked), None)
                if stale is not None:
                    del self._states[stale]
            state = self._states[deployment] = _State()
        return state

    async def sync(self) -> None:
        """Adopt circuits other replicas opened; close ours that another replica's probe
        closed. Called periodically by the app when circuits are shared."""
        if self._shared is None:
            return
        remote = await self._shared.open_circuits(list(self._states))
        now = self._clock()
        for upstream, state in self._states.items():
            opened = remote.get(upstream)
            if opened is not None:
                seconds, paused = opened
                until = now + max(seconds, 0.0)
                if state.open_until == 0.0 or until > state.open_until:
                    before = state.name
                    state.open_until, state.opened_at = until, now
                    state.paused = paused
                    self._transition(upstream, before, state.name, now)
            elif state.open_until and not state.probing and now - state.opened_at > (
                    _PUBLISH_GRACE_S):
                # Gone from the shared store: a probe elsewhere succeeded.
                self._transition(upstream, state.name, "closed", now)
                state.open_until, state.paused = 0.0, False
                state.window = _Window()

    def blocked(self, deployment: str) -> bool:
        """Would ``allow`` refuse? Asks without claiming a probe."""
        state = self._states.get(deployment)
        if state is None or state.open_until == 0.0:
            return False
        return self._clock() < state.open_until or state.probing

    def paused(self, deployment: str) -> bool:
        """Is this deployment pausing for a 429's Retry-After (or its probe after one)?"""
        state = self._states.get(deployment)
        return state is not None and state.paused and state.open_until != 0.0

    def last_failure(self, deployment: str) -> float:
        state = self._states.get(deployment)
        return state.last_failure if state is not None else float("-inf")

    def flaky(self, deployment: str, settings: Circuit) -> bool:
        """Does this deployment still answer some requests (flaky, worth a retry even while its
        circuit is open) rather than none (dead)? Flaky: its answers and failures were
        interleaved when its circuit opened, or it has answered since. A deployment that went
        down after a healthy spell shows all its answers before all its failures: dead."""
        state = self._states.get(deployment)
        if state is None or self._clock() - state.last_success >= settings.window_s:
            return False
        return state.flaky or state.last_success > state.opened_at

    def success(self, deployment: str, settings: Circuit | None = None,
                counted: bool = True) -> None:
        now = self._clock()
        state = self._state(deployment)
        state.last_success = now
        if counted and settings is not None and settings.enabled:
            state.window.add(now, settings, failed=False)
        if not state.probing:
            # Open: this answer started before the circuit opened, or was sent in panic mode;
            # only the probe's verdict closes it.
            return
        self._transition(deployment, state.name, "closed", now)
        if self._shared is not None:
            self._shared.publish_closed(deployment)
        state.open_until, state.probing, state.paused, state.flaky = 0.0, False, False, False
        state.window = _Window()

    def failure(self, deployment: str, error: UpstreamError, settings: Circuit,
                counted: bool = True) -> None:
        """Record a failed attempt. ``counted``: the first failure of its request here (a
        retry of the same request still gives a probe its verdict, but is not new evidence)."""
        if not settings.enabled:
            return
        now = self._clock()
        state = self._state(deployment)
        before = state.name
        if isinstance(error, UpstreamRateLimited):
            pause = error.retry_after if error.retry_after is not None else (
                DEFAULT_RATE_LIMIT_PAUSE_S)
            if state.open_until == 0.0 or state.paused or state.probing:
                state.paused = True  # a pause never shortens a failure cool-down
            state.open_until, state.probing = max(state.open_until, now + pause), False
            state.opened_at = now
        elif error.transient or error.trigger == "auth":
            state.last_failure = now
            if counted:
                state.window.add(now, settings, failed=True)
            requests, failed = state.window.counts()
            if state.probing or (failed >= settings.failures
                                 and failed >= settings.failure_rate * requests):
                state.open_until, state.probing = now + settings.cooldown_s, False
                state.opened_at, state.paused = now, False
                state.flaky = state.window.interleaved()
                state.window = _Window()
        else:
            self.release(deployment)
            return
        if state.name != before:
            self._transition(deployment, before, state.name, now)
        if state.open_until > now and self._shared is not None:
            self._shared.publish_open(deployment, state.open_until - now, state.paused)

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

    def states(self) -> dict[str, str]:
        """Every known upstream's circuit state ('closed', 'half_open', 'open'): for
        /metrics and the console, read when they ask."""
        return {upstream: state.name for upstream, state in self._states.items()}

    def state(self, deployment: str) -> str:
        state = self._states.get(deployment)
        return state.name if state is not None else "closed"

    def _transition(self, deployment: str, before: str, after: str, now: float) -> None:
        if before == after:
            return
        self.history.append((deployment, before, after, now))
        if self._on_transition is not None:
            self._on_transition(deployment, before, after, now)
