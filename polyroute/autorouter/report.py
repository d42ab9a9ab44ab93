"""Plain-text rendering of evaluation reports (what ``router eval`` prints)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from polyroute.autorouter.evaluate import BUDGET_SHARES, CURVES, Estimate, TableReport


def render(reports: Sequence[TableReport], header: str = "") -> str:
    parts = [header] if header else []
    parts += [_table(r) for r in reports]
    return "\n\n".join(parts) + "\n"


def _table(r: TableReport) -> str:
    strong_q, strong_c = r.single[r.strongest]
    lines = [
        f"== {r.source}: {len(r.models)} models, {r.prompts} held-out prompts "
        f"(left out: {r.dropped_seen} seen in training, {r.dropped_incomplete} incomplete); "
        f"cost {r.cost_kind} ==",
        "",
        "Single models (quality, USD per prompt; 95% bootstrap CI):",
    ]
    for model, (q, c) in sorted(r.single.items(), key=lambda kv: kv[1][1].value):
        tag = " (strongest)" if model == r.strongest else ""
        tag += " (cheapest)" if model == r.cheapest else ""
        lines.append(f"  {model:<42} {_q(q)}  {_usd(c)}{tag}")
    lines += ["", "Baselines and router at a glance:"]
    for name, (q, c) in r.points.items():
        lines.append(f"  {name:<42} {_q(q)}  {_usd(c)}")
    match = (f"{_usd(r.match_cost)} = {_pct(r.match_share)} of the strongest's cost"
             if math.isfinite(r.match_cost.value)
             else f"not reached (router's best: {r.curves['router'][-1, 1]:.3f} at "
                  f"${r.curves['router'][-1, 0]:.6f})")
    lines.append(f"  router matches {r.strongest}'s quality {strong_q.value:.3f} at: {match}")
    lines += ["", "Quality at a fixed budget (share of the strongest model's cost per prompt):",
              "  " + f"{'budget':<20}" + "".join(f"{name:>26}" for name in CURVES)]
    for share in BUDGET_SHARES:
        label = f"{share:>4.0%} ${share * strong_c.value:.6f}"
        cells = "".join(f"{_q(r.budgets[share][name]):>26}" for name in CURVES)
        lines.append(f"  {label:<20}{cells}")
    lines += ["", "AIQ (mean quality over the single models' cost range):"]
    lines += [f"  {name:<20} {_q(value)}" for name, value in r.aiq.items()]
    if r.pair is not None:
        p = r.pair
        lines += ["", f"Strong/weak pair: {p.strong} vs {p.weak} (router score: predicted "
                  "strong − weak)",
                  f"  APGR {_q(p.apgr)}   (random 0.500, oracle {p.oracle_apgr.value:.3f})",
                  f"  CPT(50%) {_pct(p.cpt50)} [{_pct_ci(p.cpt50)}] strong calls   "
                  f"(random 50.0%)",
                  f"  CPT(80%) {_pct(p.cpt80)} [{_pct_ci(p.cpt80)}] strong calls   "
                  f"(random 80.0%)"]
    lines += ["", "Router cost–quality curve (hull points: USD per prompt → quality):"]
    points = [f"  ${c:.6f} → {q:.3f}" for c, q in r.curves["router"]]
    lines += [p for i, p in enumerate(points) if i == 0 or p != points[i - 1]]
    return "\n".join(lines)


def _q(e: Estimate) -> str:
    if not math.isfinite(e.value):
        return "—"
    if not (math.isfinite(e.low) and math.isfinite(e.high)):
        return f"{e.value:.3f}"
    return f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"


def _usd(e: Estimate) -> str:
    if not (math.isfinite(e.low) and math.isfinite(e.high)):
        return f"${e.value:.6f}"
    return f"${e.value:.6f} [{e.low:.6f}, {e.high:.6f}]"


def _pct(e: Estimate) -> str:
    return f"{e.value:.1%}" if math.isfinite(e.value) else "—"


def _pct_ci(e: Estimate) -> str:
    if not (math.isfinite(e.low) and math.isfinite(e.high)):
        return "no CI"
    return f"{e.low:.1%}, {e.high:.1%}"
