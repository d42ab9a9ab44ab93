"""Deployments' own quotas (``rpm``/``tpm``) counted in the limiter the keys use: a scope
``d:<deployment>`` per deployment, so with Redis every replica counts against one window and
the quota is exact across them. Nothing is held past admission (no concurrency, no money):
the request's slot and tokens stay in the minute's window, as with a key's RPM and TPM."""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable

from polyroute.config import Deployment
from polyroute.state.limits import Denial, Limiter, Scope, StateUnavailable

log = logging.getLogger("polyroute.policy")


class DeploymentLimits:
    def __init__(self, limiter: Limiter, clock: Callable[[], float] = time.time) -> None:
        self._limiter = limiter
        self._clock = clock
        self._scopes: dict[tuple[str, int | None, int | None], Scope] = {}
        self._lease = itertools.count(1).__next__

    async def take(self, deployment: Deployment, tokens: int) -> float | None:
        key = (deployment.name, deployment.rpm, deployment.tpm)
        scope = self._scopes.get(key)
        if scope is None:  # built once per deployment (and kept across reloads that keep it)
            scope = self._scopes[key] = Scope(f"d:{deployment.name}", deployment.rpm,
                                              deployment.tpm)
        scopes, lease, now = (scope,), f"d{self._lease()}", self._clock()
        try:
            taken = await self._limiter.acquire(lease, scopes, tokens, 0, now)
        except StateUnavailable:
            # The vendor's quota is no tenant's choice: count it here until the store is back.
            taken = self._limiter.take_locally(lease, scopes, tokens, 0, now)
        if isinstance(taken, Denial):
            return math.inf if taken.retry_after is None else taken.retry_after
        self._limiter.release(taken, 0, tokens)  # nothing held past admission
        return None
