"""The dependence report as text, and its chart as a self-contained SVG (no plotting
library: a stacked bar per day of each vendor's share of the requests)."""

from __future__ import annotations

import html
import time
from collections import defaultdict
from collections.abc import Sequence

from polyroute.independence.measures import Concentration, DependenceReport

_PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
            "#ff9da7", "#9c755f", "#bab0ac")


def text(report: DependenceReport, scopes: tuple[str, ...] = ("all", "org", "team", "group"),
         ) -> str:
    since, until = (time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))
                    for t in (report.since, report.until))
    lines = [f"polyroute independence report — {since} to {until} UTC, "
             f"{report.requests} answered requests", ""]
    rows = [("scope", "by", "HHI req", "HHI tok", "HHI spend", "largest", "shares (requests)")]
    for c in report.concentrations:
        if c.scope in scopes:
            rows.append((_scope(c), c.dimension, f"{c.hhi_requests:.0f}", f"{c.hhi_tokens:.0f}",
                         f"{c.hhi_spend:.0f}", f"{c.top} {c.top_share:.0%}",
                         ", ".join(f"{s.name} {s.request_share:.0%}" for s in c.shares)))
    lines += _table(rows)
    lines.append("")
    if report.captive:
        lines.append("traffic that cannot move (a capability no other vendor in its group "
                     "offers):")
        rows = [("group", "team", "vendor", "uses", "requests", "tokens", "spend USD")]
        rows += [(c.group, c.team or "-", c.vendor, "+".join(c.features), str(c.requests),
                  str(c.tokens), f"{c.cost_usd:.4f}") for c in report.captive]
        lines += _table(rows)
    else:
        lines.append("traffic that cannot move: none")
    return "\n".join(lines)


def svg(report: DependenceReport, width: int = 720, height: int = 320) -> str:
    """Each day a bar, split by vendor share of that day's requests; a legend on the right."""
    per_day: dict[str, dict[str, float]] = defaultdict(dict)
    for point in report.series:
        per_day[point.day][point.vendor] = point.request_share
    vendors = sorted({p.vendor for p in report.series})
    colour = {v: _PALETTE[i % len(_PALETTE)] for i, v in enumerate(vendors)}
    left, top, bottom, legend = 48, 24, 40, 140
    plot_w, plot_h = width - left - legend, height - top - bottom
    days = sorted(per_day)
    step = plot_w / max(1, len(days))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
             '<title>Share of requests per vendor and day</title>',
             f'<text x="{left}" y="16" font-size="13">Share of requests per vendor</text>']
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - tick)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.0%}</text>')
    for i, day in enumerate(days):
        x, y = left + i * step + step * 0.1, float(top + plot_h)
        for vendor in vendors:
            share = per_day[day].get(vendor, 0.0)
            h = plot_h * share
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.8:.1f}" '
                         f'height="{h:.1f}" fill="{colour[vendor]}"><title>'
                         f'{html.escape(day)} {html.escape(vendor)}: {share:.1%}</title></rect>')
        parts.append(f'<text x="{x + step * 0.4:.1f}" y="{top + plot_h + 16}" '
                     f'text-anchor="middle">{html.escape(day[5:])}</text>')
    for i, vendor in enumerate(vendors):
        y = top + 18 * i
        parts.append(f'<rect x="{width - legend + 12}" y="{y}" width="12" height="12" '
                     f'fill="{colour[vendor]}"/>')
        parts.append(f'<text x="{width - legend + 30}" y="{y + 10}">{html.escape(vendor)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _scope(c: Concentration) -> str:
    return "gateway" if c.scope == "all" else f"{c.scope} {c.scope_name}"


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out
