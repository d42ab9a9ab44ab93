"""The attempt loop: which deployment to try next, when to retry, wait, hedge or give up.

For each request: candidates in route order, skipping deployments whose circuit is open; after
an error whose trigger is in the group's ``failover_on``, the next candidate. The same
deployment is retried (after Retry-After, or an exponential backoff with full jitter) only once
no other candidate is left. Everything is bounded: ``max_attempts`` per request and the
request's total deadline, which every wait and every attempt counts against.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from random import Random
from typing import Generic, TypeVar

from polyroute.config import Deployment
from polyroute.config.compiled import Resilience
from polyroute.engine.circuit import Breakers
from polyroute.errors import (
    AllDeploymentsFailed,
    GatewayError,
    NoDeploymentAvailable,
    UpstreamError,
)
from polyroute.model.record import Attempt, RequestRecord

T = TypeVar("T")

AttemptFn = Callable[[Deployment], Awaitable[T]]

_TIMER_SLACK_S = 0.005  # event-loop timers may fire a millisecond early


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
        self._skipped: list[Deployment] = []

    async def run(self, attempt: AttemptFn[T]) -> tuple[T, Deployment]:
        res, loop = self._res, asyncio.get_running_loop()
        errors: list[UpstreamError] = []
        retries: Counter[str] = Counter()
        attempts = 0
        while attempts < res.retry.max_attempts:
            dep = await self._next_allowed()
            if dep is None:
                break
            attempts += 1
            alt = await self._next_allowed() if self._hedge_delay is not None else None
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
            if self._queue or not exc.transient:
                continue
            # Nothing else can serve: wait and retry this deployment, if the budget allows.
            if retries[dep.name] >= res.retry.retries_per_deployment:
                break
            wait = exc.retry_after if exc.retry_after is not None else full_jitter(
                retries[dep.name], res.retry.backoff_base_s, res.retry.backoff_max_s, self._rng)
            # The circuit may keep the deployment closed a little longer (a 429 pauses it for
            # exactly the Retry-After, measured from the failure): wait until it lets us in.
            reopens = self._breakers.reopens_in([dep.upstream])
            if reopens is not None:
                wait = max(wait, reopens + _TIMER_SLACK_S)
            if wait > res.retry.max_retry_after_s or loop.time() + wait >= self._deadline:
                break
            retries[dep.name] += 1
            await asyncio.sleep(wait)
            self._queue.appendleft(dep)
        if not errors:
            reopens = self._breakers.reopens_in(d.upstream for d in self._skipped)
            raise NoDeploymentAvailable(
                f"no deployment of model '{self._group}' is available: every circuit is open",
                retry_after=reopens)
        raise errors[0] if len(errors) == 1 else AllDeploymentsFailed(self._group, errors)

    async def _next_allowed(self) -> Deployment | None:
        while self._queue:
            dep = self._queue.popleft()
            if await self._breakers.allow(dep.upstream):
                return dep
            self._skipped.append(dep)
        return None

    def _prune_blocked(self) -> None:
        kept = [d for d in self._queue if not self._breakers.blocked(d.upstream)]
        self._skipped.extend(d for d in self._queue if d not in kept)
        self._queue = deque(kept)

    def _keep_larger_context(self, failed: Deployment) -> None:
        """A context-window error is never retried on the same model: only a deployment known
        to have a larger window may still take the request."""
        floor = failed.context_window
        self._queue = deque(d for d in self._queue if floor is not None
                            and d.context_window is not None and d.context_window > floor)

    async def _one(self, dep: Deployment, attempt: AttemptFn[T]) -> T:
        t0 = self._clock()
        # Listed when it starts, so a hedged pair reads in the order the attempts were made.
        note = Attempt(dep.name, dep.vendor, 0.0, "pending", 0)
        self._record.attempts.append(note)
        try:
            result = await attempt(dep)
        except UpstreamError as exc:
            exc.deployment = exc.deployment or dep.name
            self._breakers.failure(dep.upstream, exc, self._res.circuit)
            self._finish(note, t0, exc.error_class, exc.status)
            raise
        except asyncio.CancelledError:
            self._breakers.release(dep.upstream)
            self._finish(note, t0, "cancelled", 0)
            raise
        self._breakers.success(dep.upstream)
        self._finish(note, t0, None, 200)
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
                tasks[asyncio.ensure_future(self._one(alt, attempt))] = alt
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
