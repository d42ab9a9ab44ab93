"""What the web console reads beyond the admin API's objects: recent requests, live figures
and the vendors' traffic share, all from the ledger. Nothing here runs unless someone asks:
the request path only appends ledger records, as it always did.

``teams``, where a method takes it, limits what it reads to those teams (a team admin's
console); None reads everything (an admin's or an auditor's)."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from typing import Any

import msgspec

from polyroute.errors import InvalidRequest
from polyroute.policy.admin import AdminService, BudgetStatus
from polyroute.storage.database import Database
from polyroute.storage.usage import live_sample, recent_requests, vendor_series

MAX_REQUESTS = 500
_LIVE_SAMPLE = 20_000
"""Rows read at most for the live figures (a minute of a busy gateway)."""


class Live(msgspec.Struct):
    window_s: float
    requests: int
    requests_per_s: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    error_rate: float
    errors_by_class: dict[str, int]
    top_models: list[tuple[str, int]]
    top_teams: list[tuple[str, int]]
    spend_usd: float
    budgets: list[BudgetStatus]
    """Every scope with a budget: spend today, this month and in total against it."""


class VendorBucket(msgspec.Struct):
    start: float
    requests: dict[str, int]
    cost_usd: dict[str, float]
    latency_ms: dict[str, float] = msgspec.field(default_factory=dict)
    """Mean latency of each vendor's answered requests in the bucket (none answered: absent)."""


class VendorShare(msgspec.Struct):
    since: float
    until: float
    bucket_s: float
    series: list[VendorBucket]
    share: dict[str, float]
    """Each vendor's share of the requests over the whole span."""
    hhi: float
    """Herfindahl-Hirschman index of that share (1: one vendor has it all; 1/n: n equal)."""


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


class ConsoleService:
    def __init__(self, admin: AdminService, db: Database,
                 clock: Callable[[], float] = time.time) -> None:
        self._admin = admin
        self._db = db
        self._clock = clock

    async def requests(self, since: float, until: float, filters: dict[str, str],
                       limit: int, teams: Collection[str] | None = None,
                       ) -> list[dict[str, Any]]:
        limit = max(1, min(limit, MAX_REQUESTS))
        try:
            if teams is None or "team" in filters:  # the caller checked the team filter
                return await recent_requests(self._db, since, until, filters, limit)
            rows = [row for team in sorted(teams) for row in await recent_requests(
                self._db, since, until, {**filters, "team": team}, limit)]
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="filter") from None
        rows.sort(key=lambda r: float(r["ts"]), reverse=True)
        return rows[:limit]

    async def live(self, window_s: float, teams: Collection[str] | None = None) -> Live:
        now = self._clock()
        if teams is None:
            rows = await live_sample(self._db, now - window_s, _LIVE_SAMPLE)
        else:
            rows = [r for team in sorted(teams)
                    for r in await live_sample(self._db, now - window_s, _LIVE_SAMPLE, team)]
            rows.sort(key=lambda r: float(r[0]), reverse=True)
            del rows[_LIVE_SAMPLE:]
        span = window_s
        if len(rows) == _LIVE_SAMPLE:  # more than the sample: its own span is the window
            span = max(1e-3, now - float(rows[-1][0]))
        latency = [float(r[3]) for r in rows]
        ttft = [float(r[4]) for r in rows if r[4] is not None]
        errors = Counter(str(r[2]) for r in rows if r[2] is not None)
        models = Counter(str(r[5]) for r in rows if r[5] is not None)
        teams = Counter(str(r[6]) for r in rows if r[6] is not None)
        return Live(
            window_s=window_s, requests=len(rows), requests_per_s=len(rows) / span,
            latency_p50_ms=percentile(latency, 0.5), latency_p99_ms=percentile(latency, 0.99),
            ttft_p50_ms=percentile(ttft, 0.5), ttft_p99_ms=percentile(ttft, 0.99),
            error_rate=sum(errors.values()) / len(rows) if rows else 0.0,
            errors_by_class=dict(errors), top_models=models.most_common(5),
            top_teams=teams.most_common(5),
            spend_usd=sum(float(r[8] or 0.0) for r in rows), budgets=await self.budgets(teams))

    async def budgets(self, teams: Collection[str] | None = None) -> list[BudgetStatus]:
        d = self._admin.directory
        if teams is None:
            scoped = [*((f"o:{o.id}", o) for o in d.orgs()),
                      *((f"t:{t.id}", t) for t in d.teams()),
                      *((f"k:{k.id}", k) for k in d.keys() if not k.revoked)]  # noqa: SIM118
        else:  # its teams and their keys, not the organisations above them
            scoped = [*((f"t:{t.id}", t) for t in d.teams() if t.id in teams),
                      *((f"k:{k.id}", k) for k in d.keys()  # noqa: SIM118
                        if not k.revoked and k.team in teams)]
        out = []
        for scope, s in scoped:
            if (s.daily_budget_usd is not None or s.monthly_budget_usd is not None
                    or s.total_budget_usd is not None):
                out.append(await self._admin.budget(scope))
        return out

    async def vendors(self, since: float, until: float, bucket_s: float) -> VendorShare:
        if not math.isfinite(bucket_s) or bucket_s <= 0 or not (
                (until - since) / bucket_s <= 10_000):
            raise InvalidRequest("bucket must be positive and cut the span into at most "
                                 "10000 buckets", param="bucket")
        rows = await vendor_series(self._db, since, until, bucket_s)
        buckets: dict[float, VendorBucket] = {}
        totals: Counter[str] = Counter()
        for start, vendor, n, cost, latency in rows:
            b = buckets.setdefault(start, VendorBucket(start, {}, {}))
            b.requests[vendor] = b.requests.get(vendor, 0) + n
            b.cost_usd[vendor] = b.cost_usd.get(vendor, 0.0) + cost
            if latency is not None:
                b.latency_ms[vendor] = latency
            totals[vendor] += n
        whole = sum(totals.values())
        share = {v: n / whole for v, n in totals.most_common()} if whole else {}
        return VendorShare(since, until, bucket_s, [buckets[k] for k in sorted(buckets)], share,
                           sum(x * x for x in share.values()))
