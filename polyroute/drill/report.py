"""Per model group: what the drill's two phases looked like, side by side."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Outcome:
    group: str
    ok: bool
    latency_s: float
    attempts: int


@dataclass(slots=True)
class GroupReport:
    group: str
    served: int = 0
    failed: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    baseline_p50_ms: float = 0.0
    baseline_p99_ms: float = 0.0
    attempts_per_request: float = 0.0
    transitions: list[str] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarise(
    baseline: Sequence[Outcome], drill: Sequence[Outcome], transitions: dict[str, list[str]]
) -> list[GroupReport]:
    by_group: dict[str, list[Outcome]] = defaultdict(list)
    base_by_group: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in drill:
        by_group[outcome.group].append(outcome)
    for outcome in baseline:
        base_by_group[outcome.group].append(outcome)
    reports = []
    for group, outcomes in sorted(by_group.items()):
        served = [o.latency_s * 1000 for o in outcomes if o.ok]
        base = [o.latency_s * 1000 for o in base_by_group[group] if o.ok]
        reports.append(GroupReport(
            group=group,
            served=len(served),
            failed=len(outcomes) - len(served),
            p50_ms=percentile(served, 0.5), p99_ms=percentile(served, 0.99),
            baseline_p50_ms=percentile(base, 0.5), baseline_p99_ms=percentile(base, 0.99),
            attempts_per_request=statistics.fmean(o.attempts for o in outcomes),
            transitions=transitions.get(group, []),
        ))
    return reports


def render(reports: Sequence[GroupReport], faults: Sequence[str],
           upstream_requests: Mapping[str, int] | None = None) -> str:
    lines = [f"polyroute drill — failing: {', '.join(faults) or 'nothing'}", ""]
    header = ("model group", "served", "failed", "added p50 ms", "added p99 ms",
              "attempts/req", "circuit transitions")
    rows = [header]
    for r in reports:
        added = (f"{r.p50_ms - r.baseline_p50_ms:+.1f}", f"{r.p99_ms - r.baseline_p99_ms:+.1f}"
                 ) if r.served else ("-", "-")  # nothing served: no latency to compare
        rows.append((r.group, str(r.served), str(r.failed), *added,
                     f"{r.attempts_per_request:.2f}", "; ".join(r.transitions) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    if upstream_requests:
        lines += ["", "requests each provider received while failing: " + ", ".join(
            f"{name} {count}" for name, count in upstream_requests.items())]
    return "\n".join(lines)


def as_json(reports: Sequence[GroupReport], faults: Sequence[str],
            upstream_requests: Mapping[str, int] | None = None) -> dict[str, Any]:
    return {"faults": list(faults), "upstream_requests": dict(upstream_requests or {}),
            "groups": [
        {"group": r.group, "served": r.served, "failed": r.failed,
         "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
         "baseline_p50_ms": r.baseline_p50_ms, "baseline_p99_ms": r.baseline_p99_ms,
         "added_p50_ms": r.p50_ms - r.baseline_p50_ms,
         "added_p99_ms": r.p99_ms - r.baseline_p99_ms,
         "attempts_per_request": r.attempts_per_request, "circuit_transitions": r.transitions}
        for r in reports]}
