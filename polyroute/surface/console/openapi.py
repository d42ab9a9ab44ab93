"""The console's read endpoints in the admin API's OpenAPI document (issue 13)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from polyroute.policy.console import Live, VendorBucket, VendorShare

CONSOLE_TYPES = (Live, VendorBucket, VendorShare)


def _q(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": kind}, "description": description}


def console_paths(op: Callable[..., dict[str, Any]], query: dict[str, dict[str, Any]],
                  ref: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """``op``, ``query`` and ``ref``: the admin document's own builders and parameters."""
    filters = [_q(f, f"only this {f}") for f in (
        "key", "team", "org", "model", "vendor", "deployment", "error_class", "request_id")]
    requests = op("The newest ledger records matching the filters (the console's Requests "
                  "page)", {"type": "object", "properties": {
                      "since": {"type": "number"}, "until": {"type": "number"},
                      "data": {"type": "array", "items": {"type": "object"}}}})
    requests["parameters"] = [query["since"], query["until"], *filters,
                              _q("status", "only this HTTP status", "integer"),
                              _q("limit", "at most this many (1–500, default 100)", "integer")]
    live = op("Requests per second, latency and time-to-first-token percentiles, errors by "
              "class, top models and teams, spend and budgets over the last window",
              ref("Live"))
    live["parameters"] = [_q("window", "seconds (1–86400, default 60)", "number")]
    vendors = op("Requests and cost per vendor per time bucket, each vendor's share and the "
                 "concentration index", ref("VendorShare"))
    vendors["parameters"] = [query["since"], query["until"],
                             _q("bucket", "seconds per bucket (default 3600)", "number")]
    return {
        "/admin/requests": {"get": requests},
        "/admin/live": {"get": live},
        "/admin/deployments": {"get": op(
            "Each configured deployment's circuit, transitions, attempts, errors, share of "
            "traffic and latency in this process", {"type": "object"})},
        "/admin/vendors": {"get": vendors},
    }
