"""Reading the ledger: spend totals that seed the budget counters, and usage reports."""

from __future__ import annotations

import calendar
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import msgspec

from polyroute.storage import sql
from polyroute.storage.database import Database

NANOS_PER_USD = 1_000_000_000


class UsageRow(msgspec.Struct, omit_defaults=True):
    group: dict[str, str | int | None]
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_usd: float
    """Priced requests only."""
    unpriced_requests: int
    """Requests that used tokens at a price nobody knows: their cost is not in cost_usd."""
    failed_requests: int
    cache_hits: int
    """Requests answered from the response cache (exact or semantic), at $0."""
    saved_usd: float
    """What those hits would have cost upstream."""


def period_starts(now: float) -> tuple[float, float]:
    """Unix times at which today (UTC) and this month (UTC) began."""
    t = time.gmtime(now)
    day = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))
    month = calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))
    return float(day), float(month)


async def spend_counters(db: Database, now: float, day: str, month: str) -> dict[str, int]:
    """'<scope>:<period>' → nano-USD spent, for every key, team and org in the ledger."""
    day_start, month_start = period_starts(now)
    counters: dict[str, int] = {}
    for prefix, query in (("k", sql.SPEND_BY_KEY), ("t", sql.SPEND_BY_TEAM),
                          ("o", sql.SPEND_BY_ORG)):
        for name, today, this_month, total in await db.fetch(query, day_start, month_start):
            scope = f"{prefix}:{name}"
            counters[f"{scope}:{day}"] = _nanos(today)
            counters[f"{scope}:{month}"] = _nanos(this_month)
            counters[f"{scope}:t"] = _nanos(total)
    return counters


async def usage(db: Database, by: Sequence[str], since: float, until: float,
                filters: dict[str, str]) -> list[UsageRow]:
    unknown = [b for b in by if b not in sql.USAGE_DIMENSIONS]
    unknown += [f for f in filters if f not in sql.USAGE_FILTERS]
    if unknown or not by:
        raise ValueError(f"unknown dimension or filter: {', '.join(unknown) or '(none given)'}")
    names = tuple(filters)
    query = sql.usage_query(tuple(by), names)
    rows = await db.fetch(query, since, until, *(filters[n] for n in names))
    out = []
    n = len(by)
    for row in rows:
        values = row[n:]
        out.append(UsageRow(
            group=dict(zip(by, row[:n], strict=True)),
            requests=_int(values[0]), prompt_tokens=_int(values[1]),
            completion_tokens=_int(values[2]), cached_tokens=_int(values[3]),
            reasoning_tokens=_int(values[4]), cost_usd=float(values[5] or 0.0),
            unpriced_requests=_int(values[6]), failed_requests=_int(values[7]),
            cache_hits=_int(values[8]), saved_usd=float(values[9] or 0.0)))
    return out


async def ledger_for(db: Database, request_id: str) -> list[dict[str, Any]]:
    """The records of a request, by the gateway's id or the one its client gave."""
    rows = await db.fetch(sql.LEDGER_BY_REQUEST, request_id, request_id)
    return [dict(zip(sql.LEDGER_COLUMNS, row, strict=True)) for row in rows]


def _nanos(usd: Any) -> int:
    return round(float(usd or 0) * NANOS_PER_USD)


def _int(value: Any) -> int:
    if isinstance(value, Decimal):
        return int(value)
    return int(value or 0)


# -- the console's reads (issue 13) --------------------------------------------------------
async def recent_requests(db: Database, since: float, until: float, filters: dict[str, str],
                          limit: int) -> list[dict[str, Any]]:
    unknown = [f for f in filters if f not in sql.REQUEST_FILTERS]
    if unknown:
        raise ValueError(f"unknown filter: {', '.join(unknown)}")
    names = tuple(filters)
    values: list[Any] = [int(filters[n]) if n == "status" else filters[n] for n in names]
    rows = await db.fetch(sql.recent_requests_query(names), since, until, *values, limit)
    return [dict(zip(sql.LEDGER_COLUMNS, row, strict=True)) for row in rows]


async def live_sample(db: Database, since: float, limit: int,
                      team: str | None = None) -> list[tuple[Any, ...]]:
    """(ts, status, error_class, latency_ms, ttft_ms, model_group, team, vendor, cost_usd)
    of the newest requests since ``since`` (of one team, if given), newest first."""
    if team is None:
        rows = await db.fetch(sql.LIVE_SAMPLE, since, limit)
    else:
        rows = await db.fetch(sql.LIVE_SAMPLE_TEAM, since, team, limit)
    return [tuple(row) for row in rows]


async def vendor_series(db: Database, since: float, until: float, bucket_s: float,
                        ) -> list[tuple[float, str, int, float, float | None]]:
    """(bucket start, vendor, requests, cost, mean latency in ms of the answered requests)
    per time bucket."""
    rows = await db.fetch(sql.VENDOR_SERIES, bucket_s, since, until)
    return [(float(b) * bucket_s, str(v), _int(n), float(c or 0.0),
             None if lat is None else float(lat)) for b, v, n, c, lat in rows]


class TrafficRow(msgspec.Struct, frozen=True):
    """Answered requests of one day, group, team, organisation, deployment and feature set."""

    day: str
    model_group: str | None
    team: str | None
    org: str | None
    vendor: str
    deployment: str | None
    features: str | None
    requests: int
    tokens: int
    cost_usd: float


async def traffic(db: Database, since: float, until: float) -> list[TrafficRow]:
    rows = await db.fetch(sql.INDEPENDENCE_TRAFFIC, since, until)
    return [TrafficRow(day=str(r[0]), model_group=r[1], team=r[2], org=r[3], vendor=str(r[4]),
                       deployment=r[5], features=r[6], requests=_int(r[7]),
                       tokens=_int(r[8]), cost_usd=float(r[9] or 0.0)) for r in rows]


class ShapeRow(msgspec.Struct, frozen=True):
    """One answered request's shape: what an exit drill replays."""

    ts: float
    endpoint: str
    model_group: str | None
    requested_model: str
    team: str | None
    vendor: str
    deployment: str | None
    stream: bool
    features: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    cost_usd: float | None


async def shapes(db: Database, since: float, until: float) -> list[ShapeRow]:
    rows = await db.fetch(sql.REPLAY_SHAPES, since, until)
    return [ShapeRow(ts=float(r[0]), endpoint=str(r[1]), model_group=r[2],
                     requested_model=str(r[3]), team=r[4], vendor=str(r[5]), deployment=r[6],
                     stream=bool(r[7]), features=r[8], prompt_tokens=_int(r[9]),
                     completion_tokens=_int(r[10]), latency_ms=float(r[11]),
                     cost_usd=None if r[12] is None else float(r[12])) for r in rows]
