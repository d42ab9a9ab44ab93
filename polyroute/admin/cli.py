"""``polyroute keys | teams | orgs | budget | usage | admin | admin-keys | audit`` — the admin
API from a shell.

With ``--url`` (or $POLYROUTE_URL) the commands call a running gateway's admin API with the
admin key from $POLYROUTE_ADMIN_KEY (else the master key from $POLYROUTE_MASTER_KEY);
without, they open the config's database directly (``--config`` or $POLYROUTE_CONFIG),
which is how an embedded gateway without a master key is administered. A running gateway
picks direct changes up within ``auth.refresh_s``.

Every error is one line on stderr (exit status 1 for a refusal by the gateway, 2 for a
command that could not be sent): a bad flag value, an unreachable gateway, a config that does
not load — never a traceback.
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
from pathlib import Path
from typing import Any

import msgspec

_LIMIT_FLAGS = (
    ("--models", "models", "comma-separated model groups allowed (default: all)"),
    ("--mcp-servers", "mcp_servers", "comma-separated MCP servers allowed (default: all)"),
    ("--mcp-tools", "mcp_tools",
     "comma-separated MCP tools allowed, as server__tool or server__* (default: all)"),
    ("--rpm", "rpm", "requests per minute"),
    ("--tpm", "tpm", "tokens per minute"),
    ("--max-concurrent", "max_concurrent", "requests at once"),
    ("--daily-budget", "daily_budget_usd", "USD per UTC day"),
    ("--monthly-budget", "monthly_budget_usd", "USD per UTC month"),
    ("--total-budget", "total_budget_usd", "USD in total"),
)

_LISTS = frozenset({"models", "mcp_servers", "mcp_tools"})


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

    admin_keys = sub.add_parser("admin-keys", help="admin keys with a role (admin, team_admin, "
                                "auditor): the master key is then needed only to bootstrap")
    ak = admin_keys.add_subparsers(dest="action", required=True)
    create = ak.add_parser("create")
    create.add_argument("--role", required=True, choices=["admin", "team_admin", "auditor"])
    create.add_argument("--team", action="append", default=[],
                        help="a team a team_admin manages (repeatable)")
    create.add_argument("--name")
    ak.add_parser("list")
    ak.add_parser("revoke").add_argument("id")
    for a in ak.choices.values():
        _connection_flags(a)
    admin_keys.set_defaults(run=_run, kind="admin-keys")

    audit = sub.add_parser("audit", help="the audit log: admin actions and policy refusals")
    au = audit.add_subparsers(dest="action", required=True)
    show = au.add_parser("list", help="entries, newest first")
    show.add_argument("--since", default="7d", help="7d, 24h, an ISO date… (default 7d)")
    show.add_argument("--until")
    for name in ("actor", "action", "target", "outcome"):
        show.add_argument(f"--{name}", dest=f"filter_{name}", help=f"only this {name}")
    show.add_argument("--limit", default="1000")
    au.add_parser("verify", help="recompute the hash chain: exit 1 if an entry was removed "
                  "or edited")
    for a in au.choices.values():
        _connection_flags(a)
    audit.set_defaults(run=_run, kind="audit")


def _connection_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("POLYROUTE_URL"),
                   help="a running gateway (default $POLYROUTE_URL); the key comes from "
                        "$POLYROUTE_ADMIN_KEY, else $POLYROUTE_MASTER_KEY")
    p.add_argument("--config", default=os.environ.get("POLYROUTE_CONFIG"),
                   help="without --url: open this config's database directly")


def _object_flags(p: argparse.ArgumentParser, kind: str) -> None:
    for flag, dest, text in _LIMIT_FLAGS:
        p.add_argument(flag, dest=dest, help=text)
    p.add_argument("--governance", metavar="JSON|@FILE",
                   help="the data-governance policy (docs/governance.md) as a JSON object, or "
                        "@FILE holding one; 'null' removes it")
    if kind == "keys":
        p.add_argument("--team")
        p.add_argument("--name")
        p.add_argument("--expires-in", help="e.g. 30d, 12h")
        p.add_argument("--tag", action="append", default=[], help="KEY=VALUE (repeatable)")
    if kind == "teams":
        p.add_argument("--org")
        p.add_argument("--on-state-outage", choices=["open", "closed"])


class CommandError(Exception):
    """A command that cannot be sent as given: printed as one line, exit status 2."""


def _number(flag: str, value: str, kind: type[int] | type[float]) -> int | float:
    """A flag's number, or one line naming the flag and what it takes ('none' clears)."""
    try:
        number = kind(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number of USD"
        raise CommandError(f"{flag}: expected {what}, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise CommandError(f"{flag}: expected a finite number, got {value!r}")
    return number


def _spec(ns: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for flag, dest, _ in _LIMIT_FLAGS:
        value = getattr(ns, dest, None)
        if value is None:
            continue
        if dest in _LISTS:
            spec[dest] = [m.strip() for m in value.split(",") if m.strip()]
        elif dest.endswith("_usd"):
            spec[dest] = _number(flag, value, float)
        else:
            spec[dest] = _number(flag, value, int)
    for name in ("team", "name", "org", "on_state_outage"):
        if getattr(ns, name, None) is not None:
            spec[name] = getattr(ns, name)
    if getattr(ns, "governance", None) is not None:
        spec["governance"] = _governance(ns.governance)
    if getattr(ns, "expires_in", None):
        spec["expires_in_s"] = time.time() - _time("--expires-in", ns.expires_in)
    if getattr(ns, "tag", None):
        bad = [t for t in ns.tag if "=" not in t or not t.split("=", 1)[0]]
        if bad:
            raise CommandError(f"--tag: expected KEY=VALUE, got {bad[0]!r}")
        spec["tags"] = dict(t.split("=", 1) for t in ns.tag)
    return spec


def _governance(value: str) -> Any:
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text()
        except OSError as exc:
            raise CommandError(f"--governance: cannot read {value[1:]}: {exc.strerror}") from None
    try:
        policy = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"--governance: not JSON ({exc})") from None
    if policy is not None and not isinstance(policy, dict):
        raise CommandError("--governance: expected a JSON object (or null)")
    return policy


def _time(flag: str, value: str) -> float:
    from polyroute.surface.admin.timespec import parse_time

    try:
        return parse_time(value)
    except ValueError as exc:
        raise CommandError(f"{flag}: {exc}") from None


def _request(ns: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    """The REST call a command stands for: (method, path, body)."""
    kind, action = ns.kind, ns.action
    if kind == "admin-keys":
        if action == "create":
            body: dict[str, Any] = {"role": ns.role, "teams": ns.team}
            if ns.name is not None:
                body["name"] = ns.name
            return "POST", "/admin/admin-keys", body
        if action == "list":
            return "GET", "/admin/admin-keys", None
        return "DELETE", f"/admin/admin-keys/{urllib.parse.quote(ns.id)}", None
    if kind == "audit":
        if action == "verify":
            return "GET", "/admin/audit/verify", None
        _time("--since", ns.since)
        if ns.until:
            _time("--until", ns.until)
        _number("--limit", ns.limit, int)
        audit_query = {"since": ns.since, "limit": ns.limit}
        if ns.until:
            audit_query["until"] = ns.until
        audit_query.update({k: getattr(ns, f"filter_{k}") for k in
                            ("actor", "action", "target", "outcome")
                            if getattr(ns, f"filter_{k}")})
        return "GET", f"/admin/audit?{urllib.parse.urlencode(audit_query)}", None
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
    try:
        return _run_command(ns)
    except CommandError as exc:
        print(f"polyroute: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line, whatever broke: never a traceback at an operator
        print(f"polyroute: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
              .rstrip(": "), file=sys.stderr)
        return 2


def _run_command(ns: argparse.Namespace) -> int:
    method, path, body = _request(ns)
    if ns.url:
        status, result = _http(ns.url, method, path, body)
    elif ns.config:
        status, result = asyncio.run(_direct(ns.config, method, path, body))
    else:
        raise CommandError("give --url (with $POLYROUTE_ADMIN_KEY or $POLYROUTE_MASTER_KEY) "
                           "or --config")
    if status >= 400:
        message = result.get("error", {}).get("message") if isinstance(result, dict) else result
        print(f"polyroute: {status}: {message}", file=sys.stderr)
        return 1
    if ns.kind == "usage" and not ns.json:
        _table(result.get("by", []), result.get("data", []))
    else:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        if method == "POST" and ns.kind in ("keys", "admin-keys"):
            print("polyroute: store the key now: it is shown only this once", file=sys.stderr)
    if ns.kind == "audit" and ns.action == "verify" and not result.get("ok"):
        print(f"polyroute: the audit log was tampered with: {result.get('problem')}",
              file=sys.stderr)
        return 1
    return 0


def _http(url: str, method: str, path: str, body: Any) -> tuple[int, Any]:
    key = os.environ.get("POLYROUTE_ADMIN_KEY") or os.environ.get("POLYROUTE_MASTER_KEY", "")
    root = url.rstrip("/").removesuffix("/v1")
    try:
        request = urllib.request.Request(
            root + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    except ValueError as exc:
        raise CommandError(f"--url: {exc}") from None
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CommandError(f"cannot reach the gateway at {root}: {reason}") from None
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        raise CommandError(f"{root} answered {status} with a body that is not JSON: is it a "
                           "polyroute gateway?") from None


async def _direct(config_path: str, method: str, path: str, body: Any) -> tuple[int, Any]:
    """Serve one admin call in process against the config's database, through the same
    routes a gateway runs (with a throwaway master key that never leaves this process)."""
    import secrets
    from dataclasses import replace

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from polyroute.config import ConfigError, load_config
    from polyroute.config.compiled import AuthSettings
    from polyroute.wiring import PolicyStack

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise CommandError(f"config error: {exc}") from None
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
