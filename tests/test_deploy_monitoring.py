"""The Grafana dashboard and the Prometheus alert rules in deploy/ use only metrics polyroute
exports: every ``polyroute_*`` name in them is a sample name of the registry."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from polyroute.observability.metrics import Metrics

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
NAME = re.compile(r"\bpolyroute_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
            "gauge": ("",), "unknown": ("",)}


def exported() -> set[str]:
    """Every sample name /metrics can show, with every optional part watched."""
    metrics = Metrics(["g"], ["d"])
    zero = lambda: 0.0  # noqa: E731
    metrics.watch_ledger(zero, zero, zero, zero)
    metrics.watch_directory(zero)
    metrics.watch_connections(zero, zero)
    metrics.watch_export("trace_spans", zero, zero, zero)
    metrics.watch_export("log_lines", zero, zero, zero)
    metrics.watch_state_store(zero)
    metrics.watch_circuits(lambda: {("u",): 0.0})
    metrics.watch_budgets(lambda: {("k:x", "day"): 0.5})
    names = set()
    for family in text_string_to_metric_families(metrics.render().decode()):
        names.update(family.name + s for s in SUFFIXES[family.type])
    return names


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "polyroute-alerts.yaml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def dashboard_exprs() -> list[str]:
    board = json.loads((DEPLOY / "grafana" / "polyroute-dashboard.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_every_metric_the_alerts_use_exists() -> None:
    names, exprs = exported(), alert_exprs()
    used = {n for e in exprs for n in NAME.findall(e)}
    assert used - names == set()
    alerts = {r["alert"] for g in yaml.safe_load(
        (DEPLOY / "prometheus" / "polyroute-alerts.yaml").read_text())["groups"]
        for r in g["rules"]}
    # The five: circuit open, error rate, budget at 90 %, ledger backlog, state store.
    assert {"PolyrouteCircuitOpen", "PolyrouteHighErrorRate", "PolyrouteBudgetAt90Percent",
            "PolyrouteLedgerBacklog", "PolyrouteStateStoreDown"} <= alerts


def test_every_metric_the_dashboard_uses_exists() -> None:
    names = exported()
    used = {n for e in dashboard_exprs() for n in NAME.findall(e)}
    assert len(used) >= 12 and used - names == set()


def test_the_check_catches_a_misspelt_metric() -> None:
    assert NAME.findall("rate(polyroute_request_total[5m])")[0] not in exported()
