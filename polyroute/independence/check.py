"""Single points of vendor failure (issue 14, item 3): for each vendor, cloud and region the
config uses, what losing it would take down — per model group and per team — given where each
group's traffic may go (its equivalent deployments and fallback groups) and the capabilities
the recorded traffic actually used."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import msgspec

from polyroute.independence.topology import DOMAINS, Placement, Topology, features_of
from polyroute.storage.usage import TrafficRow


class Finding(msgspec.Struct):
    domain: str
    """vendor, cloud or region."""
    lost: str
    """The vendor, cloud or region lost."""
    scope: str
    """group or team."""
    name: str
    requests_lost: int
    """Recorded requests that would find nowhere to go."""
    requests: int
    """All recorded requests of the scope."""
    share_lost: float
    broken: list[str]
    """Why: 'no other deployment', or the capabilities nobody left offers (tools, …)."""


def check(rows: Sequence[TrafficRow], topology: Topology,
          domains: Sequence[str] = DOMAINS, tolerate: float = 0.0) -> list[Finding]:
    """Every (domain, value, scope) whose loss would take down more than ``tolerate`` of the
    scope's recorded requests; a group with no recorded traffic is a finding when losing the
    value leaves it nowhere to go at all."""
    findings: list[Finding] = []
    totals_group: dict[str, int] = defaultdict(int)
    totals_team: dict[str, int] = defaultdict(int)
    for row in rows:
        totals_group[row.model_group or ""] += row.requests
        if row.team is not None:
            totals_team[row.team] += row.requests
    for domain in domains:
        values = sorted({p.domain(domain) for ps in topology.groups.values() for p in ps}
                        - {"unknown"})
        for value in values:
            lost_group: dict[str, int] = defaultdict(int)
            lost_team: dict[str, int] = defaultdict(int)
            why: dict[str, set[str]] = defaultdict(set)
            for row in rows:
                if row.model_group is None or not _on(row, domain, value, topology):
                    continue
                reason = _stranded(row, topology.targets(row.model_group), domain, value)
                if reason is None:
                    continue
                lost_group[row.model_group] += row.requests
                why[f"group:{row.model_group}"].add(reason)
                if row.team is not None:
                    lost_team[row.team] += row.requests
                    why[f"team:{row.team}"].add(reason)
            for group in sorted(topology.groups):
                total = totals_group.get(group, 0)
                lost = lost_group.get(group, 0)
                if total == 0:
                    if _dark(topology.targets(group), domain, value):
                        findings.append(Finding(domain, value, "group", group, 0, 0, 1.0,
                                                ["no other deployment (no traffic recorded)"]))
                    continue
                if lost and lost / total > tolerate:
                    findings.append(Finding(domain, value, "group", group, lost, total,
                                            lost / total, sorted(why[f"group:{group}"])))
            for team, lost in sorted(lost_team.items()):
                total = totals_team[team]
                if lost / total > tolerate:
                    findings.append(Finding(domain, value, "team", team, lost, total,
                                            lost / total, sorted(why[f"team:{team}"])))
    return findings


def _on(row: TrafficRow, domain: str, value: str, topology: Topology) -> bool:
    """Was this traffic served from the lost vendor, cloud or region?"""
    placed = topology.by_deployment.get(row.deployment or "")
    if placed is not None:
        return placed.domain(domain) == value
    if domain == "vendor":
        return row.vendor == value
    if domain == "cloud":
        return topology.cloud_of(row.deployment, row.vendor) == value
    return False


def _stranded(row: TrafficRow, targets: Sequence[Placement], domain: str,
              value: str) -> str | None:
    """None when somewhere outside the lost value can serve the row; else why not."""
    alive = [p for p in targets if p.domain(domain) != value]
    if not alive:
        return "no other deployment"
    features = features_of(row.features)
    if any(p.serves(features) for p in alive):
        return None
    missing = [f for f in features if not any(p.serves((f,)) for p in alive)]
    return "+".join(missing or features)


def _dark(targets: Sequence[Placement], domain: str, value: str) -> bool:
    return bool(targets) and all(p.domain(domain) == value for p in targets)
