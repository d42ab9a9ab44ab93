"""Dependence, measured from the ledger (issue 14, item 2): per vendor, cloud and region, the
share of requests, tokens and spend, for the whole gateway and per organisation, team and
model group; the Herfindahl–Hirschman index of each; the largest single share; and the
traffic that cannot move because it uses a capability no other vendor in its group offers.

Pure functions over :class:`~polyroute.storage.usage.TrafficRow`; docs/independence.md has a
worked example of each number."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import msgspec

from polyroute.independence.check import Finding
from polyroute.independence.topology import Topology, features_of
from polyroute.storage.usage import TrafficRow

SCOPES = ("all", "org", "team", "group")
DIMENSIONS = ("vendor", "cloud", "region")


class Share(msgspec.Struct):
    name: str
    requests: int
    tokens: int
    cost_usd: float
    request_share: float
    token_share: float
    spend_share: float


class Concentration(msgspec.Struct):
    """One scope (the gateway, an organisation, a team or a group) along one dimension."""

    scope: str
    """all, org, team or group."""
    scope_name: str
    dimension: str
    """vendor, cloud or region."""
    requests: int
    tokens: int
    cost_usd: float
    hhi_requests: float
    """Σ share² × 10 000 over the requests' shares: 10 000 is one supplier, 10 000 / n for n
    equal ones (the antitrust convention: above 2 500 is highly concentrated)."""
    hhi_tokens: float
    hhi_spend: float
    top: str
    """The largest single supplier by requests…"""
    top_share: float
    """…and its share of the requests."""
    shares: list[Share]


class Captive(msgspec.Struct):
    """Answered traffic that could not move: it used capabilities that no other vendor's
    equivalent deployment in its group (or its fallbacks) offers."""

    group: str
    team: str | None
    vendor: str
    features: list[str]
    requests: int
    tokens: int
    cost_usd: float


class DayShare(msgspec.Struct):
    day: str
    vendor: str
    requests: int
    request_share: float


class DependenceReport(msgspec.Struct):
    since: float
    until: float
    requests: int
    concentrations: list[Concentration]
    captive: list[Captive]
    series: list[DayShare]
    """Per day, each vendor's share of that day's requests (the chart)."""

    def find(self, scope: str, name: str, dimension: str) -> Concentration | None:
        return next((c for c in self.concentrations if (c.scope, c.scope_name, c.dimension)
                     == (scope, name, dimension)), None)


class IndependenceView(msgspec.Struct):
    """GET /admin/independence: the measures and the single points of failure."""

    report: DependenceReport
    findings: list[Finding]


def hhi(values: Sequence[float]) -> float:
    total = sum(values)
    if total <= 0:
        return 0.0
    return sum((v / total) ** 2 for v in values) * 10_000


def measure(rows: Sequence[TrafficRow], topology: Topology, since: float,
            until: float) -> DependenceReport:
    # (scope, scope name, dimension) → supplier → [requests, tokens, spend]
    sums: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(lambda: [0.0, 0.0, 0.0]))
    for row in rows:
        suppliers = {"vendor": row.vendor, "cloud": topology.cloud_of(row.deployment, row.vendor),
                     "region": topology.region_of(row.deployment)}
        scopes = [("all", "*"), ("org", row.org), ("team", row.team),
                  ("group", row.model_group)]
        for scope, name in scopes:
            if name is None:
                continue
            for dimension, supplier in suppliers.items():
                cell = sums[(scope, name, dimension)][supplier]
                cell[0] += row.requests
                cell[1] += row.tokens
                cell[2] += row.cost_usd
    concentrations = [_concentration(key, by_supplier) for key, by_supplier in sorted(
        sums.items(), key=lambda kv: (SCOPES.index(kv[0][0]), kv[0][1],
                                      DIMENSIONS.index(kv[0][2])))]
    return DependenceReport(since=since, until=until, requests=sum(r.requests for r in rows),
                            concentrations=concentrations, captive=captive(rows, topology),
                            series=_series(rows))


def captive(rows: Sequence[TrafficRow], topology: Topology) -> list[Captive]:
    found: dict[tuple[str, str | None, str, tuple[str, ...]], list[float]] = {}
    for row in rows:
        features = features_of(row.features)
        if not features or row.model_group is None:
            continue
        elsewhere = [p for p in topology.targets(row.model_group)
                     if p.vendor != row.vendor and p.serves(features)]
        if elsewhere:
            continue
        cell = found.setdefault((row.model_group, row.team, row.vendor, features),
                                [0.0, 0.0, 0.0])
        cell[0] += row.requests
        cell[1] += row.tokens
        cell[2] += row.cost_usd
    return [Captive(group, team, vendor, list(features), int(v[0]), int(v[1]), v[2])
            for (group, team, vendor, features), v in sorted(
                found.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", kv[0][2], kv[0][3]))]


def _concentration(key: tuple[str, str, str],
                   by_supplier: dict[str, list[float]]) -> Concentration:
    scope, name, dimension = key
    requests = sum(v[0] for v in by_supplier.values())
    tokens = sum(v[1] for v in by_supplier.values())
    spend = sum(v[2] for v in by_supplier.values())
    shares = sorted((Share(supplier, int(v[0]), int(v[1]), v[2], _ratio(v[0], requests),
                           _ratio(v[1], tokens), _ratio(v[2], spend))
                     for supplier, v in by_supplier.items()),
                    key=lambda s: (-s.requests, s.name))
    return Concentration(
        scope=scope, scope_name=name, dimension=dimension, requests=int(requests),
        tokens=int(tokens), cost_usd=spend,
        hhi_requests=hhi([v[0] for v in by_supplier.values()]),
        hhi_tokens=hhi([v[1] for v in by_supplier.values()]),
        hhi_spend=hhi([v[2] for v in by_supplier.values()]),
        top=shares[0].name, top_share=shares[0].request_share, shares=shares)


def _series(rows: Sequence[TrafficRow]) -> list[DayShare]:
    per_day: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        per_day[row.day][row.vendor] += row.requests
    out = []
    for day, vendors in sorted(per_day.items()):
        total = sum(vendors.values())
        out += [DayShare(day, vendor, n, _ratio(n, total)) for vendor, n in sorted(vendors.items())]
    return out


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0
