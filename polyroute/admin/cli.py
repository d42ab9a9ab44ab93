"""``polyroute keys | teams | orgs | budget | usage | admin`` — the admin API from a shell.

With ``--url`` (or $POLYROUTE_URL) the commands call a running gateway's admin API with the
master key from $POLYROUTE_MASTER_KEY; without, they open the config's database directly
(``--config`` or $POLYROUTE_CONFIG), which is how an embedded gateway without a master key is
administered. A running gateway picks direct changes up within ``auth.refresh_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import msgspec

_LIMIT_FLAGS = (
    ("--models", "models", "comma-separated model groups allowed (default: all)"),
    ("--rpm", "rpm", "requests per minute"),
    ("--tpm", "tpm", "tokens per minute"),
    ("--max-concurrent", "max_concurrent", "requests at once"),
    ("--daily-budget", "daily_budget_usd", "USD per UTC day"),
    ("--monthly-budget", "monthly_budget_usd", "USD per UTC month"),
    ("--total-budget", "total_budget_usd", "USD in total"),
)


def add_parser(sub: Any) -> None:
    """Register the admin commands on the main parser's subcommands."""
    for kind in ("keys", "teams", "orgs"):
        p = sub.add_parser(kind, help=f"create, list, change or remove {kind}")
        actions = p.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create")
        if kind != "keys":
            create.add_argument("id")
        _object_flags(create, kind)
        actions.add_parser("list").add_argument("--team", help="keys of this team only")
        for verb in ("show", "update", "revoke" if kind == "keys" else "delete"):
            a = actions.add_parser(verb)
            a.add_argument("id")
            if verb == "update":
                _object_flags(a, kind)
        for a in actions.choices.values():
            _connection_flags(a)
        p.set_defaults(run=_run, kind=kind)

    budget = sub.add_parser("budget", help="spend so far, reservations and limits of a scope")
    budget.add_argument("scope", choices=["key", "team", "org"])
    budget.add_argument("id")
    _connection_flags(budget)
    budget.set_defaults(run=_run, kind="budget", action="show")

    usage = sub.add_parser("usage", help="requests, tokens and spend from the ledger")
    usage.add_argument("--by", default="day",
                       help="comma-separated: key, team, org, vendor, model, upstream_model, "
                            "deployment, day, status (default: day)")
    usage.add_argument("--since", default="7d", help="7d, 24h, an ISO date… (default 7d)")
    usage.add_argument("--until")
    for name in ("key", "team", "org", "vendor", "model"):
        usage.add_argument(f"--{name}", help=f"only this {name}")
    usage.add_argument("--json", action="store_true", help="print JSON, not a table")
    _connection_flags(usage)
    usage.set_defaults(run=_run, kind="usage", action="show")

    admin = sub.add_parser("admin", help="admin API utilities")
    admin_sub = admin.add_subparsers(dest="action", required=True)
    admin_sub.add_parser("openapi", help="print the admin API's OpenAPI document")
    admin.set_defaults(run=_openapi)


def _connection_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("POLYROUTE_URL"),
                   help="a running gateway (default $POLYROUTE_URL); the master key comes "
                        "from $POLYROUTE_MASTER_KEY")
    p.add_argument("--config", default=os.environ.get("POLYROUTE_CONFIG"),
                   help="without --url: open this config's database directly")


def _object_flags(p: argparse.ArgumentParser, kind: str) -> None:
    for flag, dest, text in _LIMIT_FLAGS:
        p.add_argument(flag, dest=dest, help=text)
    if kind == "keys":
        p.add_argument("--team")
        p.add_argument("--name")
        p.add_argument("--expires-in", help="e.g. 30d, 12h")
        p.add_argument("--tag", action="append", default=[], help="KEY=VALUE (repeatable)")
    if kind == "teams":
        p.add_argument("--org")
        p.add_argument("--on-state-outage", choices=["open", "closed"])


def _spec(ns: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for _, dest, _ in _LIMIT_FLAGS:
        value = getattr(ns, dest, None)
        if value is None:
            continue
        if dest == "models":
            spec[dest] = [m.strip() for m in value.split(",") if m.strip()]
        elif dest.endswith("_usd"):
            spec[dest] = float(value)
        else:
            spec[dest] = int(value)
    for name in ("team", "name", "org", "on_state_outage"):
        if getattr(ns, name, None) is not None:
            spec[name] = getattr(ns, name)
    if getattr(ns, "expires_in", None):
        from polyroute.surface.admin.timespec import parse_time

        spec["expires_in_s"] = time.time() - parse_time(ns.expires_in)
    if getattr(ns, "tag", None):
        spec["tags"] = dict(t.split("=", 1) for t in ns.tag)
    return spec


def _request(ns: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    """The REST call a command stands for: (method, path, body)."""
    kind, action = ns.kind, ns.action
    if kind == "usage":
        query = {"by": ns.by, "since": ns.since}
        query.update({k: getattr(ns, k) for k in ("until", "key", "team", "org", "vendor",
                                                  "model") if getattr(ns, k)})
        return "GET", f"/admin/usage?{urllib.parse.urlencode(query)}", None
    if kind == "budget":
        plural = {"key": "keys", "team": "teams", "org": "orgs"}[ns.scope]
        return "GET", f"/admin/{plural}/{ns.id}/budget", None
    base = f"/admin/{kind}"
    if action == "create":
        body = _spec(ns)
        if kind != "keys":
            body["id"] = ns.id
        return "POST", base, body
    if action == "list":
        team = getattr(ns, "team", None)
        return "GET", base + (f"?team={urllib.parse.quote(team)}" if team else ""), None
    if action == "show":
        return "GET", f"{base}/{ns.id}", None
    if action == "update":
        return "PATCH", f"{base}/{ns.id}", _spec(ns)
    return "DELETE", f"{base}/{ns.id}", None


def _run(ns: argparse.Namespace) -> int:
    method, path, body = _request(ns)
    if ns.url:
        status, result = _http(ns.url, method, path, body)
    elif ns.config:
        status, result = asyncio.run(_direct(ns.config, method, path, body))
    else:
        print("polyroute: give --url (with $POLYROUTE_MASTER_KEY) or --config", file=sys.stderr)
        return 2
    if status >= 400:
        message = result.get("error", {}).get("message") if isinstance(result, dict) else result
        print(f"polyroute: {status}: {message}", file=sys.stderr)
        return 1
    if ns.kind == "usage" and not ns.json:
        _table(result.get("by", []), result.get("data", []))
    else:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        if method == "POST" and ns.kind == "keys":
            print("polyroute: store the key now: it is shown only this once", file=sys.stderr)
    return 0


def _http(url: str, method: str, path: str, body: Any) -> tuple[int, Any]:
    master = os.environ.get("POLYROUTE_MASTER_KEY", "")
    root = url.rstrip("/").removesuffix("/v1")
    request = urllib.request.Request(
        root + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {master}", "Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


async def _direct(config_path: str, method: str, path: str, body: Any) -> tuple[int, Any]:
    """Serve one admin call in process against the config's database, through the same
    routes a gateway runs (with a throwaway master key that never leaves this process)."""
    import secrets
    from dataclasses import replace

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from polyroute.config import load_config
    from polyroute.config.compiled import AuthSettings
    from polyroute.wiring import PolicyStack

    config = load_config(config_path)
    master = secrets.token_urlsafe(24)
    config = replace(config, auth=AuthSettings(master, config.auth.refresh_s),
                     storage=replace(config.storage, ledger=False))
    stack = PolicyStack(config)
    # A full start, not just the database: budgets read the limiter's counters, which start
    # from the ledger's spend so far (in process) or live in Redis. The stack's start-up
    # notices (open mode, …) are about a serving gateway, not this one call.
    logging.getLogger("polyroute.policy").setLevel(logging.ERROR)
    await stack.start()
    try:
        app = web.Application()
        stack.admin.add_to(app)
        async with TestClient(TestServer(app)) as client:
            response = await client.request(method, path, json=body,
                                            headers={"Authorization": f"Bearer {master}"})
            result = await response.json()
            status = response.status
    finally:
        await stack.aclose()
    return status, result


def _table(by: list[str], rows: list[dict[str, Any]]) -> None:
    head = [*by, "requests", "prompt", "completion", "cost_usd", "unpriced", "failed",
            "cache_hits", "saved_usd"]
    lines = [[*(str(r["group"].get(b)) for b in by), str(r["requests"]),
              str(r["prompt_tokens"]), str(r["completion_tokens"]), f"{r['cost_usd']:.6f}",
              str(r["unpriced_requests"]), str(r["failed_requests"]),
              str(r.get("cache_hits", 0)), f"{r.get('saved_usd', 0.0):.6f}"] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
              for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))


def _openapi(ns: argparse.Namespace) -> int:
    from polyroute.surface.admin.openapi import openapi

    print(msgspec.json.format(msgspec.json.encode(openapi()), indent=2).decode())
    return 0
