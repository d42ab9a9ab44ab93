"""Admin roles and the audit log (issue 11, items 3 and 4), through the real admin routes
on a real database: each role refused what it may not do, every write and every refusal in
the hash-chained log, and a tampered log caught by ``audit verify`` on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from polyroute.config import load_config
from polyroute.wiring import PolicyStack

MASTER = "pr-master-governance-5e2a91"
ROOT = Path(__file__).resolve().parent.parent
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _config(tmp_path: Path, storage: dict[str, Any]) -> Path:
    path = tmp_path / "polyroute.yaml"
    path.write_text(yaml.safe_dump({
        "providers": {"sim": {"base_url": "http://127.0.0.1:9/v1", "auth": "none"}},
        "model_groups": {"chat": {"deployments": [{"provider": "sim", "model": "m"}]}},
        "auth": {"master_key": "${PR_MASTER}"},
        "storage": {"sqlite_path": str(tmp_path / "p.db"), **storage},
    }))
    return path


class Admin:
    def __init__(self, client: TestClient[Any, Any], stack: PolicyStack) -> None:
        self.client = client
        self.stack = stack

    async def call(self, method: str, path: str, body: Any = None,
                   key: str = MASTER) -> tuple[int, Any]:
        response = await self.client.request(method, path, json=body,
                                             headers={"Authorization": f"Bearer {key}"})
        return response.status, await response.json()

    async def ok(self, method: str, path: str, body: Any = None, key: str = MASTER) -> Any:
        status, result = await self.call(method, path, body, key)
        assert status in (200, 201), result
        return result


async def _admin(config: Path) -> AsyncIterator[Admin]:
    stack = PolicyStack(load_config(str(config), {"PR_MASTER": MASTER}))
    await stack.start()
    app = web.Application()
    stack.admin.add_to(app)
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield Admin(client, stack)
    finally:
        await stack.aclose()


@pytest.fixture
async def sqlite_admin(tmp_path: Path) -> AsyncIterator[Admin]:
    async for a in _admin(_config(tmp_path, {})):
        yield a


@pytest.fixture(params=["sqlite", "postgres"])
async def any_admin(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Admin]:
    if request.param == "sqlite":
        async for a in _admin(_config(tmp_path, {})):
            yield a
        return
    import asyncpg

    name = f"polyroute_audit_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(PG_URL)
    await conn.execute(f"CREATE DATABASE {name}")
    try:
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        async for a in _admin(_config(tmp_path, {"postgres_url": url})):
            yield a
    finally:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.close()


async def _setup(a: Admin) -> dict[str, str]:
    await a.ok("POST", "/admin/orgs", {"id": "acme"})
    for team in ("red", "blue"):
        await a.ok("POST", "/admin/teams", {"id": team, "org": "acme"})
    made = {role: (await a.ok("POST", "/admin/admin-keys", body))["key"] for role, body in {
        "admin": {"role": "admin"}, "auditor": {"role": "auditor", "name": "audit"},
        "red_admin": {"role": "team_admin", "teams": ["red"]}}.items()}
    made["red_key"] = (await a.ok("POST", "/admin/keys", {"team": "red"}))["id"]
    made["blue_key"] = (await a.ok("POST", "/admin/keys", {"team": "blue"}))["id"]
    return made


async def test_each_role_is_refused_what_it_may_not_do(sqlite_admin: Admin) -> None:
    a = sqlite_admin
    k = await _setup(a)
    admin, auditor, red = k["admin"], k["auditor"], k["red_admin"]
    assert k["admin"].startswith("sk-pradm-")

    # admin: everything, admin keys included (the master key only bootstraps)
    await a.ok("POST", "/admin/teams", {"id": "green"}, key=admin)
    await a.ok("POST", "/admin/admin-keys", {"role": "auditor"}, key=admin)

    # auditor: reads everything, writes nothing
    for path in ("/admin/keys", "/admin/teams", "/admin/orgs", "/admin/status",
                 "/admin/audit", "/admin/audit/verify", "/admin/admin-keys",
                 f"/admin/keys/{k['blue_key']}/budget"):
        await a.ok("GET", path, key=auditor)
    for method, path, body in (("POST", "/admin/keys", {"team": "red"}),
                               ("PATCH", "/admin/teams/red", {"rpm": 5}),
                               ("DELETE", f"/admin/keys/{k['red_key']}", None),
                               ("POST", "/admin/admin-keys", {"role": "admin"})):
        status, body_ = await a.call(method, path, body, key=auditor)
        assert status == 403 and body_["error"]["code"] == "role_forbidden", (path, body_)
        assert "read-only" in body_["error"]["message"]

    # team admin: its team's keys and settings, nothing else
    made = await a.ok("POST", "/admin/keys", {"team": "red", "rpm": 10}, key=red)
    await a.ok("PATCH", f"/admin/keys/{made['id']}", {"rpm": 20}, key=red)
    await a.ok("PATCH", "/admin/teams/red", {"rpm": 100}, key=red)
    listed = await a.ok("GET", "/admin/keys", key=red)
    assert {x["team"] for x in listed["data"]} == {"red"}
    assert [t["id"] for t in (await a.ok("GET", "/admin/teams", key=red))["data"]] == ["red"]
    await a.ok("GET", "/admin/usage", key=red)  # filtered to its one team
    refused = [
        ("POST", "/admin/keys", {"team": "blue"}), ("POST", "/admin/keys", {}),
        ("GET", f"/admin/keys/{k['blue_key']}", None),
        ("DELETE", f"/admin/keys/{k['blue_key']}", None),
        ("PATCH", f"/admin/keys/{made['id']}", {"team": "blue"}),
        ("PATCH", "/admin/teams/blue", {"rpm": 1}), ("PATCH", "/admin/teams/red", {"org": None}),
        ("POST", "/admin/teams", {"id": "mine"}), ("DELETE", "/admin/teams/red", None),
        ("GET", "/admin/orgs", None), ("GET", "/admin/usage?team=blue", None),
        ("GET", "/admin/audit", None), ("POST", "/admin/admin-keys", {"role": "admin"}),
        ("GET", "/admin/status", None),
    ]
    for method, path, body in refused:
        status, body_ = await a.call(method, path, body, key=red)
        assert status == 403 and body_["error"]["code"] == "role_forbidden", (path, body_)
    assert "revoked" not in await a.ok("GET", f"/admin/keys/{k['blue_key']}")  # still live

    # a revoked admin key is refused; a wrong one too
    ak = (await a.ok("GET", "/admin/admin-keys"))["data"]
    red_id = next(x["id"] for x in ak if x["role"] == "team_admin")
    assert "key" not in ak[0] and "hash" not in ak[0]
    await a.ok("DELETE", f"/admin/admin-keys/{red_id}", key=admin)
    assert (await a.call("GET", "/admin/keys", key=red))[0] == 401
    assert (await a.call("GET", "/admin/keys", key=red[:-3] + "abc"))[0] == 401
    # team_admin needs teams; the others may not have any
    assert (await a.call("POST", "/admin/admin-keys", {"role": "team_admin"}))[0] == 400
    assert (await a.call("POST", "/admin/admin-keys", {"role": "admin", "teams": ["red"]})
            )[0] == 400


async def test_every_write_and_refusal_is_audited_and_tampering_is_caught(
        any_admin: Admin) -> None:
    a = any_admin
    k = await _setup(a)
    await a.call("DELETE", "/admin/teams/red", key=k["red_admin"])  # refused
    await a.ok("PATCH", "/admin/teams/blue", {"rpm": 7}, key=k["admin"])
    a.stack.audit.refused("k:abc", "request", "chat", {"rule": "team:red deny_vendors"})
    await a.stack.audit.flush()
    entries = (await a.ok("GET", "/admin/audit", key=k["auditor"]))["data"]
    actions = [(e["actor"].split(":")[0], e["action"], e["target"], e["outcome"])
               for e in reversed(entries)]
    assert actions[:3] == [("master", "POST create organisations", "acme", "ok"),
                           ("master", "POST create teams", "red", "ok"),
                           ("master", "POST create teams", "blue", "ok")]
    assert ("admin-key", "DELETE delete teams", "red", "error 403") in actions
    assert ("admin-key", "PATCH change teams", "blue", "ok") in actions
    assert actions[-1] == ("k", "request", "chat", "refused")
    created = [e for e in entries if e["action"] == "POST create admin keys"]
    assert len(created) == 3 and all("sk-pradm" not in str(e) for e in entries)
    patched = next(e for e in entries if e["action"] == "PATCH change teams")
    assert patched["detail"]["body"] == {"rpm": 7}
    filtered = await a.ok("GET", "/admin/audit?outcome=refused", key=k["auditor"])
    assert [e["action"] for e in filtered["data"]] == ["request"]

    verdict = await a.ok("GET", "/admin/audit/verify")
    assert verdict["ok"] and verdict["entries"] == len(entries) == verdict["head_seq"]

    db = a.stack.db
    await db.execute("UPDATE audit_log SET detail = ? WHERE seq = ?", '{"body":{"rpm":1}}',
                     patched["seq"])
    verdict = await a.ok("GET", "/admin/audit/verify")
    assert not verdict["ok"] and f"entry {patched['seq']} was edited" in verdict["problem"]
    await db.execute("UPDATE audit_log SET detail = ? WHERE seq = ?",
                     '{"body":{"rpm":7}}', patched["seq"])
    assert (await a.ok("GET", "/admin/audit/verify"))["ok"]

    await db.execute("DELETE FROM audit_log WHERE seq = ?", 3)
    verdict = await a.ok("GET", "/admin/audit/verify")
    assert not verdict["ok"] and "entry 3 is missing" in verdict["problem"]


async def test_removing_the_last_entries_is_caught(sqlite_admin: Admin) -> None:
    a = sqlite_admin
    await _setup(a)
    head = (await a.ok("GET", "/admin/audit/verify"))["head_seq"]
    await a.stack.db.execute("DELETE FROM audit_log WHERE seq >= ?", head - 1)
    verdict = await a.ok("GET", "/admin/audit/verify")
    assert not verdict["ok"] and "removed from the end" in verdict["problem"]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "polyroute", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "PR_MASTER": MASTER,
                               **(env or {})})


def test_cli_errors_are_one_line_and_audit_verify_exits_1(tmp_path: Path) -> None:
    config = str(_config(tmp_path, {}))
    for args, expected in (
        (("teams", "create", "t", "--rpm", "none"), "--rpm: expected a whole number, got 'none'"),
        (("keys", "create", "--tag", "nokv"), "--tag: expected KEY=VALUE, got 'nokv'"),
        (("teams", "create", "t", "--daily-budget", "five"),
         "--daily-budget: expected a number of USD, got 'five'"),
        (("keys", "create", "--expires-in", "soon"), "--expires-in:"),
        (("orgs", "create", "o", "--governance", "{guardrails: [x]}"), "--governance: not JSON"),
        (("orgs", "create", "o", "--governance", "[]"),
         "--governance: expected a JSON object (or null)"),
    ):
        result = _cli(*args, "--config", config)
        assert result.returncode == 2, result
        assert result.stderr.startswith(f"polyroute: {expected}"), result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    # a policy naming a guardrail the config lacks: refused when written, in one line
    policy = tmp_path / "policy.json"
    policy.write_text('{"guardrails": ["no-such-guardrail"], "deny_terms": ["x"]}')
    for args in (("teams", "create", "t", "--governance", f"@{policy}"),
                 ("keys", "create", "--governance", '{"guardrails": ["no-such-guardrail"]}')):
        result = _cli(*args, "--config", config)
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("polyroute: 400: The governance policy names the "
                                        "guardrail 'no-such-guardrail'"), result.stderr
    made = _cli("teams", "create", "t", "--governance", '{"deny_terms": ["x"]}',
                "--config", config)
    assert made.returncode == 0 and '"deny_terms"' in made.stdout, made.stderr
    result = _cli("keys", "list", "--url", "http://127.0.0.1:9")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("polyroute: cannot reach the gateway at http://127.0.0.1:9")
    result = _cli("keys", "list", "--config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr

    made = _cli("admin-keys", "create", "--role", "auditor", "--config", config)
    assert made.returncode == 0 and "shown only this once" in made.stderr, made.stderr
    assert _cli("audit", "verify", "--config", config).returncode == 0
    listed = _cli("audit", "list", "--config", config)
    assert listed.returncode == 0 and "POST create admin keys" in listed.stdout
    import sqlite3

    with sqlite3.connect(tmp_path / "p.db") as conn:
        conn.execute("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 1")
    result = _cli("audit", "verify", "--config", config)
    assert result.returncode == 1 and "entry 1 was edited" in result.stderr


_CRASH = """
import os, signal, sys
from polyroute.policy.audit import AuditLog
from polyroute.storage.audit import AuditStore
from polyroute.storage.spool import Spool
log = AuditLog(AuditStore(None), Spool(sys.argv[1]))  # never reaches a database
log.open()
for i in range(3):
    log.refused(f"key:k{i}", "request policy_violation", "chat", {"rule": f"r{i}"})
os.kill(os.getpid(), signal.SIGKILL)  # before any flush
"""


async def test_refusals_spooled_by_a_killed_process_are_chained_by_the_next(
        tmp_path: Path) -> None:
    from polyroute.policy.audit import AuditLog
    from polyroute.storage.audit import AuditStore
    from polyroute.storage.spool import Spool
    from polyroute.storage.sqlite import SqliteDatabase

    spool = tmp_path / "audit"
    killed = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", _CRASH, str(spool)], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert killed.returncode == -9
    db = SqliteDatabase(str(tmp_path / "p.db"))
    await db.start()
    log = AuditLog(AuditStore(db), Spool(str(spool)))
    log.open()  # adopts the dead process's segment
    await log.flush()
    entries = await log.query(0, 2e9, {"outcome": "refused"}, 10)
    assert sorted(e.actor for e in entries) == ["key:k0", "key:k1", "key:k2"]
    assert (await log.verify()).ok
    await log.flush()  # nothing twice
    assert len(await log.query(0, 2e9, {}, 10)) == 3
    await log.aclose()
    await db.close()
