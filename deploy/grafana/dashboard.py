"""Writes polyroute-dashboard.json (python3 deploy/grafana/dashboard.py > deploy/grafana/polyroute-dashboard.json)."""
import json
panels = []
def ts(title, exprs, unit="short", x=0, y=0, w=12, h=8, kind="timeseries"):
    pid = len(panels) + 1
    panels.append({
        "id": pid, "type": kind, "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [{"refId": chr(65 + i), "expr": e, "legendFormat": l}
                    for i, (e, l) in enumerate(exprs)],
    })
F = '{instance=~"$instance"}'
ts("Requests per second by status", [(f'sum by (status) (rate(polyroute_requests_total{F}[$__rate_interval]))', "{{status}}")], "reqps", 0, 0)
ts("Error rate by class", [(f'sum by (error_class) (rate(polyroute_errors_total{F}[$__rate_interval])) / ignoring(error_class) group_left sum(rate(polyroute_requests_total{F}[$__rate_interval]))', "{{error_class}}")], "percentunit", 12, 0)
ts("Latency p50 / p99", [
    (f'histogram_quantile(0.5, sum by (le) (rate(polyroute_request_duration_seconds_bucket{F}[$__rate_interval])))', "p50"),
    (f'histogram_quantile(0.99, sum by (le) (rate(polyroute_request_duration_seconds_bucket{F}[$__rate_interval])))', "p99")], "s", 0, 8)
ts("Time to first token p50 / p99", [
    (f'histogram_quantile(0.5, sum by (le) (rate(polyroute_time_to_first_token_seconds_bucket{F}[$__rate_interval])))', "p50"),
    (f'histogram_quantile(0.99, sum by (le) (rate(polyroute_time_to_first_token_seconds_bucket{F}[$__rate_interval])))', "p99")], "s", 12, 8)
ts("Upstream attempts by deployment and outcome", [(f'sum by (deployment, outcome) (rate(polyroute_upstream_attempts_total{F}[$__rate_interval]))', "{{deployment}} {{outcome}}")], "reqps", 0, 16)
ts("Upstream attempt latency p99 by deployment", [(f'histogram_quantile(0.99, sum by (le, deployment) (rate(polyroute_upstream_attempt_duration_seconds_bucket{F}[$__rate_interval])))', "{{deployment}}")], "s", 12, 16)
ts("Circuit state (0 closed, 1 half open, 2 open)", [(f'max by (upstream) (polyroute_circuit_state{F})', "{{upstream}}")], "short", 0, 24)
ts("Traffic share by vendor", [(f'sum by (vendor) (rate(polyroute_upstream_attempts_total{{instance=~"$instance",outcome="ok"}}[$__rate_interval])) / ignoring(vendor) group_left sum(rate(polyroute_upstream_attempts_total{{instance=~"$instance",outcome="ok"}}[$__rate_interval]))', "{{vendor}}")], "percentunit", 12, 24)
ts("Spend (USD per hour) by model group", [(f'sum by (model_group) (rate(polyroute_spend_usd_total{F}[$__rate_interval])) * 3600', "{{model_group}}")], "currencyUSD", 0, 32)
ts("Tokens per second by kind", [(f'sum by (kind) (rate(polyroute_tokens_total{F}[$__rate_interval]))', "{{kind}}")], "short", 12, 32)
ts("Budget used", [(f'max by (scope, period) (polyroute_budget_used_ratio{F})', "{{scope}} {{period}}")], "percentunit", 0, 40, kind="bargauge")
ts("Ledger backlog", [(f'max(polyroute_ledger_backlog_bytes{F})', "backlog"), (f'max(polyroute_ledger_store_failing{F})', "store failing")], "bytes", 12, 40)
ts("State store up", [(f'min(polyroute_state_store_up{F})', "up")], "short", 0, 48, 6, 6, kind="stat")
ts("Open connections", [(f'sum(polyroute_connections_open{F})', "open")], "short", 6, 48, 6, 6, kind="stat")
ts("Telemetry dropped", [(f'sum(polyroute_trace_spans_dropped{F})', "spans"), (f'sum(polyroute_log_lines_dropped{F})', "log lines")], "short", 12, 48, 12, 6)
dash = {
    "title": "polyroute", "uid": "polyroute-overview", "schemaVersion": 39, "version": 1,
    "tags": ["polyroute", "llm"], "timezone": "utc", "refresh": "10s",
    "time": {"from": "now-1h", "to": "now"},
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
        {"name": "instance", "type": "query", "label": "Instance",
         "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "query": "label_values(polyroute_requests_total, instance)", "includeAll": True,
         "multi": True, "current": {"text": "All", "value": "$__all"}, "refresh": 2},
    ]},
    "panels": panels,
    "annotations": {"list": []},
}
print(json.dumps(dash, indent=2))
