"""``polyroute independence report | check`` (issue 14): dependence on each vendor, cloud and
region measured from the config's ledger, and the single points of vendor failure."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from polyroute.independence.check import Finding, check
from polyroute.independence.measures import DependenceReport, measure
from polyroute.independence.render import svg, text
from polyroute.independence.topology import DOMAINS, Topology
from polyroute.storage.usage import TrafficRow, traffic
from polyroute.surface.admin.timespec import parse_time


def add_parser(sub: Any) -> None:
    p = sub.add_parser("independence", help="how dependent on each vendor, and what losing "
                       "one would take down (from the ledger)")
    actions = p.add_subparsers(dest="action", required=True)
    report = actions.add_parser("report", help="shares, concentration (HHI) and traffic that "
                                "cannot move, per vendor, cloud and region")
    report.add_argument("--format", choices=["text", "json"], default="text")
    report.add_argument("--json", type=Path, help="also write the report as JSON here")
    report.add_argument("--svg", type=Path, help="write a chart of vendor shares per day here")
    report.set_defaults(run=_report)
    gate = actions.add_parser("check", help="single points of vendor failure; exit 1 on a "
                              "finding (for CI)")
    gate.add_argument("--domains", default=",".join(DOMAINS),
                      help="what may be lost: vendor, cloud, region (comma-separated)")
    gate.add_argument("--tolerate", type=float, default=0.0, metavar="FRACTION",
                      help="report only losses above this share of a scope's requests")
    gate.add_argument("--json", type=Path, help="also write the findings as JSON here")
    gate.set_defaults(run=_check)
    for a in (report, gate):
        a.add_argument("--config", required=True, help="the gateway config (its ledger)")
        a.add_argument("--since", default="30d", help="7d, 24h, 2026-05-01 or Unix seconds")
        a.add_argument("--until", help="same forms; default now")


def _load(ns: argparse.Namespace) -> tuple[list[TrafficRow], Topology, float, float]:
    from polyroute.config import load_config
    from polyroute.wiring import open_database

    since = parse_time(ns.since)
    until = parse_time(ns.until) if ns.until else time.time() + 1
    config = load_config(ns.config)

    async def read() -> list[TrafficRow]:
        db = open_database(config)
        await db.start()
        try:
            return await traffic(db, since, until)
        finally:
            await db.close()

    return asyncio.run(read()), Topology.of(config), since, until


def _report(ns: argparse.Namespace) -> int:
    try:
        rows, topology, since, until = _load(ns)
    except Exception as exc:
        print(f"polyroute independence: {exc}", file=sys.stderr)
        return 2
    report = measure(rows, topology, since, until)
    if ns.format == "json":
        print(_json(report))
    else:
        print(text(report))
    if ns.json is not None:
        ns.json.write_text(_json(report), encoding="utf-8")
    if ns.svg is not None:
        ns.svg.write_text(svg(report), encoding="utf-8")
    return 0


def _check(ns: argparse.Namespace) -> int:
    domains = [d.strip() for d in ns.domains.split(",") if d.strip()]
    unknown = [d for d in domains if d not in DOMAINS]
    if unknown:
        print(f"polyroute independence: unknown domain {', '.join(unknown)}; use "
              f"{', '.join(DOMAINS)}", file=sys.stderr)
        return 2
    try:
        rows, topology, _, _ = _load(ns)
    except Exception as exc:
        print(f"polyroute independence: {exc}", file=sys.stderr)
        return 2
    findings = check(rows, topology, domains, ns.tolerate)
    print(render_findings(findings))
    if ns.json is not None:
        ns.json.write_text(_json(findings), encoding="utf-8")
    return 1 if findings else 0


def render_findings(findings: list[Finding]) -> str:
    if not findings:
        return "polyroute independence check: no single point of vendor failure"
    lines = [f"polyroute independence check: {len(findings)} finding(s)"]
    for f in findings:
        lines.append(f"  losing {f.domain} {f.lost} takes down {f.share_lost:.0%} of {f.scope} "
                     f"{f.name} ({f.requests_lost} of {f.requests} requests): "
                     f"{'; '.join(f.broken)}")
    return "\n".join(lines)


def _json(value: DependenceReport | list[Finding]) -> str:
    return json.dumps(msgspec.to_builtins(value), indent=2)
