"""The attempt loop: which deployment to try next, when to retry, wait, hedge or give up.

For each request: candidates in route order, skipping deployments whose circuit is open; after
an error whose trigger is in the group's ``failover_on``, the next candidate.

- **Same model at once, another model after one retry.** After a short transient error (5xx,
  reset, 429 with a Retry-After of at most ``retry.short_retry_after_s``) the next deployment
  of the same model (same group, or same upstream model name) is tried at once
  (``retry.before_same_model`` = 0); before moving to a *different* model, the failed
  deployment is retried ``retry.before_other_model`` = 1 time after a jittered pause, because
  the client asked for this model.
- **Nothing else left**: the same deployment is retried (after Retry-After, or an exponential
  backoff with full jitter) up to ``retry.retries_per_deployment`` times (once after a
  timeout: each retry would cost another whole timeout).
- **Panic**: when every candidate's circuit is open, the request is not refused: the candidates
  are tried anyway, least recently failed first. A dead one (answering nothing since it went
  down) gets one attempt per request; a flaky one gets its retries. A 429's pause is
  never overridden: it stays exact, and a request waits it out when it is short.

Everything is bounded: ``max_attempts`` per request and the request's total deadline, which
every wait and every attempt counts against. Evidence for the circuits is one outcome per
request and deployment; client-caused failures are never evidence.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from random import Random
from typing import Generic, TypeVar, get_args

from polyroute.adapters.spec import Unservable
from polyroute.config import Deployment
from polyroute.config.compiled import Resilience
from polyroute.engine.circuit import Breakers
from polyroute.engine.observer import Tracer
from polyroute.engine.quota_gate import QuotaCheck
from polyroute.engine.room import Holder
from polyroute.errors import (
    AllDeploymentsFailed,
    GatewayError,
    NoDeploymentAvailable,
    RateLimited,
    UpstreamError,
)
from polyroute.model.record import Attempt, RequestRecord

_NEVER_TRIED = frozenset({"not_allowed", *get_args(Unservable)})
"""Outcomes of deployments routing left out (a group the key may not use, a deployment
that cannot serve a media request): listed in the record, never attempted."""

T = TypeVar("T")

AttemptFn = Callable[[Deployment], Awaitable[T]]

_TIMER_SLACK_S = 0.005  # event-loop timers may fire a millisecond early
_RETRY_AT_ONCE = frozenset({"unavailable", "connect", "rate_limited"})
"""Errors that a moment's pause often cures. Timeouts are not among them: a retry would cost
another whole timeout."""
_TIMEOUT_RETRIES = 1  # for the same reason, a deployment left alone is retried once after one


def full_jitter(retry: int, base_s: float, max_s: float, rng: Random) -> float:
    """AWS's 'full jitter': uniform in [0, min(max, base · 2^retry)]."""
    return rng.uniform(0.0, min(max_s, base_s * (2**retry)))


class AttemptLoop(Generic[T]):
    def __init__(
        self,
        *,
        group: str,
        candidates: list[Deployment],
        resilience: Resilience,
        record: RequestRecord,
        breakers: Breakers,
        deadline: float,
        clock: Callable[[], float],
        rng: Random,
        discard: Callable[[T], Awaitable[None]] | None = None,
        hedge_delay: Callable[[], float] | None = None,
        origins: Mapping[str, str] | None = None,
        client_listed: frozenset[str] = frozenset(),
        holder: Holder | None = None,
        quota: QuotaCheck | None = None,
        tracer: Tracer | None = None,
        resuming: bool = False,
    ) -> None:
        self._group = group
        self._queue = deque(candidates)
        self._res = resilience
        self._record = record
        self._breakers = breakers
        self._deadline = deadline
        self._clock = clock
        self._rng = rng
        self._discard = discard
        self._hedge_delay = hedge_delay
        self._origins = origins or {}
        """Deployment name → the group it came from (absent: the requested group)."""
        self._client_listed = client_listed
        """Deployments of groups the client named in its own ``models`` list."""
        self._holder = holder
        """Counts the attempt in flight and learns its latency (routing's room)."""
        self._quota = quota
        self._at_quota: list[tuple[Deployment, float]] = []
        """Deployments whose own rpm/tpm had no room, with the seconds until they would."""
        self._tracer = tracer
        self._resuming = resuming
        """This loop finishes a broken stream: its attempts are traced as 'resume'."""
        self._skipped: list[Deployment] = []
        self._tried: set[str] = set()
        self._forced: set[str] = set()
        """Deployments tried although their circuit is open (panic)."""
        self._evidence: set[str] = set()
        """Upstreams whose outcome for this request the circuits already have."""
        # Plain dicts, not Counters: built for every request, read only after a failure.
        self._retries: dict[str, int] = {}
        self._early_retries: dict[str, int] = {}

    async def run(self, attempt: AttemptFn[T]) -> tuple[T, Deployment]:
        res = self._res
        errors: list[UpstreamError] = []
        attempts = 0
        while attempts < res.retry.max_attempts:
            dep = await self._next()
            if dep is None:
                break
            attempts += 1
            alt = await self._next_allowed() if (
                self._hedge_delay is not None and not self._forced) else None
            try:
                if alt is not None:
                    attempts += 1
                    return await self._hedged(dep, alt, attempt)
                return await self._one(dep, attempt), dep
            except _HedgeFailed as both:
                errors.extend(both.errors)
                exc = both.errors[-1]
            except UpstreamError as error:
                errors.append(error)
                exc = error
            if exc.trigger not in res.failover_on:
                break
            if exc.trigger == "context_window":
                self._keep_larger_context(dep)
            self._prune_blocked()
            wait = self._retry_wait(dep, exc)
            if wait is None:
                continue  # the next candidate, if any
            await asyncio.sleep(wait)
            if not self._still_open_to(dep):
                continue
            self._queue.appendleft(dep)
        if not errors and self._at_quota:
            wait = min(w for _, w in self._at_quota)
            names = ", ".join(sorted({d.name for d, _ in self._at_quota}))
            raise RateLimited(
                f"every deployment of model '{self._group}' that could serve this request is "
                f"at its own quota ({names})", code="deployment_quota_exceeded",
                retry_after=None if math.isinf(wait) else max(wait, 0.001))
        if not errors:
            reopens = self._breakers.reopens_in(d.upstream for d in self._skipped)
            raise NoDeploymentAvailable(
                f"no deployment of model '{self._group}' is available: every circuit is open",
                retry_after=reopens)
        raise errors[0] if len(errors) == 1 else AllDeploymentsFailed(self._group, errors)

    def _retry_wait(self, dep: Deployment, exc: UpstreamError) -> float | None:
        """How long to wait before trying ``dep`` again, or None to move on."""
        retry, breakers = self._res.retry, self._breakers
        following = self._queue[0] if self._queue else None
        if following is not None:
            # Another candidate is waiting: retry first only a short transient error, and only
            # as often as moving to that candidate's model allows.
            allowed = (retry.before_same_model if self._same_model(dep, following)
                       else retry.before_other_model)
            if exc.trigger not in _RETRY_AT_ONCE or self._early_retries.get(dep.name, 0) >= allowed:
                return None
            if breakers.blocked(dep.upstream) and not breakers.paused(dep.upstream):
                return None  # its circuit just opened: the evidence says go elsewhere
            counter, limit = self._early_retries, retry.short_retry_after_s
            jitter = full_jitter(0, retry.backoff_base_s, retry.backoff_max_s, self._rng)
        else:
            # Nothing else can serve: wait and retry this deployment, if the budget allows.
            budget = retry.retries_per_deployment
            if exc.trigger == "timeout":
                budget = min(budget, _TIMEOUT_RETRIES)
            if not exc.transient or self._retries.get(dep.name, 0) >= budget:
                return None
            if not self._still_open_to(dep):
                return None
            counter, limit = self._retries, retry.max_retry_after_s
            jitter = full_jitter(self._retries.get(dep.name, 0), retry.backoff_base_s,
                                 retry.backoff_max_s, self._rng)
        wait = exc.retry_after if exc.retry_after is not None else jitter
        if dep.name not in self._forced:
            # The circuit may keep the deployment closed a little longer (a 429 pauses it for
            # exactly the Retry-After, measured from the failure): wait until it lets us in.
            reopens = breakers.reopens_in([dep.upstream])
            if reopens is not None:
                wait = max(wait, reopens + _TIMER_SLACK_S)
        if wait > limit or asyncio.get_running_loop().time() + wait >= self._deadline:
            return None
        counter[dep.name] = counter.get(dep.name, 0) + 1
        return wait

    def _still_open_to(self, dep: Deployment) -> bool:
        """May this request retry ``dep`` although its circuit opened on failures (in panic, or
        while the request waited)? Only a flaky deployment, which still answers some requests;
        a dead one is never hammered. A 429's pause is waited out."""
        breakers = self._breakers
        if not breakers.blocked(dep.upstream) or breakers.paused(dep.upstream):
            return True
        if not breakers.flaky(dep.upstream, self._res.circuit):
            return False
        self._forced.add(dep.name)
        return True

    def _same_model(self, a: Deployment, b: Deployment) -> bool:
        return a.model == b.model or (
            self._origins.get(a.name, self._group) == self._origins.get(b.name, self._group))

    async def _next(self) -> Deployment | None:
        dep = await self._next_allowed()
        if dep is None and not self._tried:
            dep = self._panic() or await self._after_pause()
        if dep is None:
            dep = await self._after_quota()
        if dep is not None:
            self._tried.add(dep.name)
        return dep

    async def _after_pause(self) -> Deployment | None:
        """Every candidate pauses for a 429: wait for the first to reopen, when that is soon
        enough (``retry.max_retry_after_s``, and before the deadline), rather than refuse."""
        reopens = self._breakers.reopens_in(d.upstream for d in self._skipped)
        if reopens is None or reopens > self._res.retry.max_retry_after_s or (
                asyncio.get_running_loop().time() + reopens >= self._deadline):
            return None
        await asyncio.sleep(reopens + _TIMER_SLACK_S)
        for dep in {d.name: d for d in self._skipped}.values():
            if await self._breakers.allow(dep.upstream):
                return dep
        return None

    async def _next_allowed(self) -> Deployment | None:
        while self._queue:
            dep = self._queue.popleft()
            if dep.name in self._forced or await self._breakers.allow(dep.upstream):
                if self._quota is not None:
                    wait = await self._quota.admit(dep)
                    if wait is not None:
                        self._breakers.release(dep.upstream)  # a probe slot, if it held one
                        self._at_quota.append((dep, wait))
                        continue
                return dep
            self._skipped.append(dep)
        return None

    async def _after_quota(self) -> Deployment | None:
        """Every deployment left is at its own quota: wait for the first to have room, when
        that is within the group's ``queue_s`` (and the deadline), rather than refuse."""
        loop = asyncio.get_running_loop()
        while self._at_quota and self._quota is not None:
            wait = min(w for _, w in self._at_quota)
            if wait > self._quota.queue_s or loop.time() + wait >= self._deadline:
                return None
            await asyncio.sleep(wait + _TIMER_SLACK_S)
            waiting, self._at_quota = self._at_quota, []
            for i, (dep, _) in enumerate(waiting):
                again = await self._quota.admit(dep)
                if again is None:
                    self._at_quota.extend(waiting[i + 1:])
                    return dep
                self._at_quota.append((dep, again))
        return None

    def _panic(self) -> Deployment | None:
        """Every candidate is open: try them anyway, least recently failed first, rather than
        turn a partial outage into a total one. A 429's pause is never overridden."""
        unique = {d.name: d for d in self._skipped}.values()
        candidates = [d for d in unique if not self._breakers.paused(d.upstream)]
        if not candidates:
            return None
        candidates.sort(key=lambda d: self._breakers.last_failure(d.upstream))
        self._forced.update(d.name for d in candidates)
        self._skipped = [d for d in self._skipped if d.name not in self._forced]
        self._queue = deque(candidates[1:])
        return candidates[0]

    def _prune_blocked(self) -> None:
        kept = [d for d in self._queue
                if d.name in self._forced or not self._breakers.blocked(d.upstream)]
        self._skipped.extend(d for d in self._queue if d not in kept)
        self._queue = deque(kept)

    def _keep_larger_context(self, failed: Deployment) -> None:
        """A context-window error is never retried on the same model: only a deployment known
        to have a larger window may still take the request, or, when the client listed it in
        its own ``models``, one whose window is unknown (the client asked for it)."""
        floor = failed.context_window

        def larger(d: Deployment) -> bool:
            if d.upstream == failed.upstream:
                return False
            if d.name in self._client_listed:
                return d.context_window is None or floor is None or d.context_window > floor
            return floor is not None and d.context_window is not None and (
                d.context_window > floor)

        self._queue = deque(d for d in self._queue if larger(d))

    async def _one(self, dep: Deployment, attempt: AttemptFn[T], hedge: bool = False) -> T:
        # Listed when it starts, so a hedged pair reads in the order the attempts were made.
        note = Attempt(dep.name, dep.vendor, 0.0, "pending", 0)
        if self._tracer is None:
            self._record.attempts.append(note)
            return await self._call(dep, attempt, note)
        trace = self._tracer.attempt(self._record, dep, self._kind(dep, hedge))
        self._record.attempts.append(note)
        try:
            return await self._call(dep, attempt, note)
        finally:
            trace.end(note)

    def _kind(self, dep: Deployment, hedge: bool) -> str:
        if self._resuming:
            return "resume"
        if hedge:
            return "hedge"
        if not self._record.attempts:  # the common case, without building a list
            return "first"
        earlier = [a.deployment for a in self._record.attempts
                   if a.error_class not in _NEVER_TRIED]
        if not earlier:
            return "first"
        return "retry" if dep.name in earlier else "failover"

    async def _call(self, dep: Deployment, attempt: AttemptFn[T], note: Attempt) -> T:
        t0 = self._clock()
        counted = dep.upstream not in self._evidence
        holder = self._holder
        if holder is not None:
            holder.begin(dep.name)
        try:
            result = await attempt(dep)
        except UpstreamError as exc:
            exc.deployment = exc.deployment or dep.name
            if exc.client_caused:
                self._breakers.release(dep.upstream)
            else:
                self._breakers.failure(dep.upstream, exc, self._res.circuit, counted=counted)
                self._evidence.add(dep.upstream)
            self._finish(note, t0, exc.error_class, exc.status)
            if holder is not None:
                holder.failed(dep.name)
            raise
        except asyncio.CancelledError:
            self._breakers.release(dep.upstream)
            self._finish(note, t0, "cancelled", 0)
            if holder is not None:
                holder.failed(dep.name)
            raise
        except BaseException:
            if holder is not None:
                holder.failed(dep.name)
            raise
        self._breakers.success(dep.upstream, self._res.circuit, counted=counted)
        self._finish(note, t0, None, 200)
        if holder is not None:
            holder.succeeded(dep.name, note.latency_s)
        record = self._record
        record.vendor, record.deployment, record.upstream_model = dep.vendor, dep.name, dep.model
        return result

    def _finish(self, note: Attempt, t0: float, error_class: str | None, status: int) -> None:
        note.latency_s, note.error_class, note.status = self._clock() - t0, error_class, status

    async def _hedged(
        self, primary: Deployment, alt: Deployment, attempt: AttemptFn[T]
    ) -> tuple[T, Deployment]:
        """Start ``primary``; if it has not answered after the hedge delay, start ``alt`` too.
        The first to answer wins; the other is cancelled and never billed."""
        assert self._hedge_delay is not None
        tasks: dict[asyncio.Task[T], Deployment] = {
            asyncio.ensure_future(self._one(primary, attempt)): primary}
        errors: list[UpstreamError] = []
        try:
            done, _ = await asyncio.wait(tasks, timeout=self._hedge_delay())
            if not done:
                tasks[asyncio.ensure_future(self._one(alt, attempt, hedge=True))] = alt
            else:
                self._queue.appendleft(alt)  # not needed after all: keep it for failover
            while tasks:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    dep = tasks.pop(task)
                    error = task.exception()
                    if error is None:
                        return task.result(), dep
                    if not isinstance(error, UpstreamError):
                        raise error
                    errors.append(error)
            raise _HedgeFailed(errors)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                try:
                    result = await task
                except (asyncio.CancelledError, GatewayError):
                    continue
                if self._discard is not None:
                    await self._discard(result)  # finished in the same instant: close it


class _HedgeFailed(Exception):
    def __init__(self, errors: list[UpstreamError]) -> None:
        super().__init__("both hedged attempts failed")
        self.errors = errors
