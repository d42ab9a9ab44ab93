"""The dependence measures as /metrics gauges, recomputed from the ledger by a background
task: never on the request path."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from polyroute.independence.measures import DependenceReport, measure
from polyroute.independence.topology import Topology
from polyroute.observability.metrics import Metrics
from polyroute.storage.database import Database, StoreUnavailable
from polyroute.storage.usage import traffic

log = logging.getLogger("polyroute.independence")


def publish(report: DependenceReport, metrics: Metrics) -> None:
    """Replace the gauges' values at once (a supplier that disappeared drops out)."""
    shares: dict[tuple[str, ...], float] = {}
    hhis: dict[tuple[str, ...], float] = {}
    for c in report.concentrations:
        scope = (c.scope, c.scope_name, c.dimension)
        for kind, value in (("requests", c.hhi_requests), ("tokens", c.hhi_tokens),
                            ("spend", c.hhi_spend)):
            hhis[(*scope, kind)] = value
        for s in c.shares:
            shares[(*scope, s.name, "requests")] = s.request_share
            shares[(*scope, s.name, "tokens")] = s.token_share
            shares[(*scope, s.name, "spend")] = s.spend_share
    captive: dict[tuple[str, ...], float] = {}
    for k in report.captive:
        key = (k.group, k.vendor)
        captive[key] = captive.get(key, 0.0) + k.requests
    metrics.dependence_share.values = shares
    metrics.dependence_hhi.values = hhis
    metrics.dependence_captive_requests.values = captive


async def measure_forever(db: Database, topology: Topology, metrics: Metrics,
                          interval_s: float, window_s: float,
                          clock: Callable[[], float] = time.time) -> None:
    while True:
        now = clock()
        try:
            rows = await traffic(db, now - window_s, now + 1)
        except StoreUnavailable as exc:
            log.debug("dependence gauges: the database is unreachable: %s", exc)
        else:
            publish(measure(rows, topology, now - window_s, now + 1), metrics)
        await asyncio.sleep(interval_s)
