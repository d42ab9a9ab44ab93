"""Issue 10, item 7: an admin budget of 1e300 bricked the gateway (OverflowError in the
directory rebuild: revoked keys kept working, the admin API answered 500, the gateway would not
restart, the CLI could not repair it).

Every admin number is bounded (400 naming the field); a bad row already in the database
(written here with SQL) is quarantined: the gateway starts, revoked keys stay revoked, keys
that depend on the row are refused, the rest work, and the CLI repairs it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, admin, chat_body, ok
from tests.support.sim import SimServer
from tests.test_limits_budget import keyed_config

ENV = {"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}


def _raw_admin(gw: GatewayProcess, method: str, path: str, raw: bytes) -> tuple[int, Any]:
    """Bytes as given: Python's json writes NaN and Infinity, which JSON does not have."""
    request = urllib.request.Request(
        gw.root_url + path, method=method, data=raw,
        headers={"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _chat(gw: GatewayProcess, key: str) -> int:
    request = urllib.request.Request(
        f"{gw.base_url}/chat/completions", method="POST",
        data=json.dumps(chat_body()).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


@pytest.fixture(scope="module")
def sim() -> Any:
    with SimServer(api_key=SIM_KEY) as server:
        yield server


def test_every_admin_number_is_bounded_with_a_400_naming_the_field(sim: SimServer) -> None:
    with GatewayProcess(keyed_config(sim), ENV) as gw:
        ok(admin(gw, "POST", "/admin/teams", {"id": "t"}))
        key_id = ok(admin(gw, "POST", "/admin/keys", {"team": "t"}))["id"]
        attacks: list[tuple[str, str, bytes, str]] = [
            ("POST", "/admin/keys", b'{"daily_budget_usd": 1e300}', "daily_budget_usd"),
            ("POST", "/admin/keys", b'{"monthly_budget_usd": 1e999}', "monthly_budget_usd"),
            ("POST", "/admin/keys", b'{"total_budget_usd": -0.01}', "total_budget_usd"),
            ("POST", "/admin/keys", b'{"rpm": 100000000000000000000000000000}', "rpm"),
            ("POST", "/admin/keys", b'{"tpm": -5}', "tpm"),
            ("POST", "/admin/keys", b'{"max_concurrent": 9223372036854775808}',
             "max_concurrent"),
            ("POST", "/admin/keys", b'{"expires_in_s": 1e300}', "expires_in_s"),
            ("POST", "/admin/keys", b'{"expires_at": -1}', "expires_at"),
            ("POST", "/admin/teams", b'{"id": "x", "daily_budget_usd": 1e300}',
             "daily_budget_usd"),
            ("POST", "/admin/orgs", b'{"id": "x", "total_budget_usd": 1e300}',
             "total_budget_usd"),
            ("PATCH", "/admin/teams/t", b'{"tpm": 10000000000000000000000}', "tpm"),
            ("PATCH", f"/admin/keys/{key_id}", b'{"daily_budget_usd": 1e300}',
             "daily_budget_usd"),
            ("POST", "/admin/keys", json.dumps({"models": ["m"] * 5000}).encode(), "models"),
            ("POST", "/admin/keys", json.dumps({"name": "n" * 10_000}).encode(), "name"),
        ]
        for method, path, body, field in attacks:
            status, reply = _raw_admin(gw, method, path, body)
            assert status == 400, (path, body[:60], status, reply)
            assert reply["error"]["param"] == field, (body[:60], reply)
            assert field in reply["error"]["message"]
        for body in (b'{"daily_budget_usd": NaN}', b'{"daily_budget_usd": Infinity}',
                     b'{"rpm": -Infinity}'):
            status, reply = _raw_admin(gw, "POST", "/admin/keys", body)
            assert status == 400, (body, reply)
        # Nothing was stored, and the gateway still works.
        assert len(ok(admin(gw, "GET", "/admin/keys"))["data"]) == 1
        assert ok(admin(gw, "GET", "/admin/teams/t")).get("tpm") is None
        assert ok(admin(gw, "GET", "/admin/status"))["directory_loaded"] is True


@pytest.mark.timeout(120)
def test_a_bad_row_in_the_database_is_quarantined_and_repairable(sim: SimServer) -> None:
    with tempfile.TemporaryDirectory(prefix="polyroute-avail-") as tmp:
        workdir = Path(tmp)
        config = keyed_config(sim)
        with GatewayProcess(config, ENV, tmp=workdir) as gw:
            ok(admin(gw, "POST", "/admin/teams", {"id": "good"}))
            ok(admin(gw, "POST", "/admin/teams", {"id": "bad", "daily_budget_usd": 5.0}))
            made = {name: ok(admin(gw, "POST", "/admin/keys", spec)) for name, spec in {
                "good": {"team": "good"}, "in_bad_team": {"team": "bad"},
                "revoked": {"team": "good"}, "corrupt": {}}.items()}
            ok(admin(gw, "DELETE", f"/admin/keys/{made['revoked']['id']}"))
            assert _chat(gw, made["revoked"]["key"]) == 401
            db_path, config_path = gw.db_path, gw.config_path

        # Rows no admin API call can write any more: by hand, or by an older version.
        with sqlite3.connect(db_path) as db:
            db.execute("UPDATE teams SET settings = ? WHERE id = 'bad'",
                       ('{"daily_budget_usd": 1e300}',))
            db.execute("UPDATE api_keys SET settings = ? WHERE id = ?",
                       ('{"rpm": 1e400}', made["revoked"]["id"]))
            db.execute("UPDATE api_keys SET settings = ? WHERE id = ?",
                       ('not json at all', made["corrupt"]["id"]))
            db.execute("INSERT INTO orgs (id, settings, created_at, deleted, version) "
                       "VALUES ('junk', '{\"tpm\": -3}', 'yesterday', 0, 1)")

        with GatewayProcess(config, ENV, tmp=workdir) as gw:  # it starts
            status = ok(admin(gw, "GET", "/admin/status"))
            assert set(status["quarantined"]) == {
                "t:bad", "o:junk", f"k:{made['revoked']['id']}", f"k:{made['corrupt']['id']}"}
            assert "quarantined t:bad" in gw.log()
            assert b"polyroute_directory_quarantined_rows 4.0" in gw.get("/metrics")[1]
            assert _chat(gw, made["good"]["key"]) == 200
            assert _chat(gw, made["revoked"]["key"]) in (401, 403)  # still refused
            assert _chat(gw, made["corrupt"]["key"]) == 403
            assert _chat(gw, made["in_bad_team"]["key"]) == 403  # no limits lifted
            # The admin API answers about them (no 500), so an operator can see and fix them.
            for path in ("/admin/teams", "/admin/keys", "/admin/orgs", "/admin/teams/bad",
                         f"/admin/keys/{made['corrupt']['id']}"):
                assert admin(gw, "GET", path)[0] == 200, path

            # The CLI repairs the team (straight on the database, as on a bricked gateway);
            # the running gateway picks the change up within auth.refresh_s.
            env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
            env.update(ENV)
            repaired = subprocess.run(
                [sys.executable, "-m", "polyroute", "teams", "update", "bad",
                 "--daily-budget", "5", "--config", str(config_path)],
                env=env, capture_output=True, text=True, timeout=60)
            assert repaired.returncode == 0, repaired.stderr
            assert json.loads(repaired.stdout)["daily_budget_usd"] == 5.0
            ok(admin(gw, "PATCH", f"/admin/keys/{made['corrupt']['id']}", {"rpm": 100}))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _chat(gw, made["in_bad_team"]["key"]) != 200:
                time.sleep(0.2)
            assert _chat(gw, made["in_bad_team"]["key"]) == 200
            assert _chat(gw, made["corrupt"]["key"]) == 200
            assert _chat(gw, made["revoked"]["key"]) in (401, 403)
            left = ok(admin(gw, "GET", "/admin/status"))["quarantined"]
            assert set(left) == {"o:junk", f"k:{made['revoked']['id']}"}
