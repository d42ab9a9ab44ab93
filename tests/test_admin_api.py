"""The admin API and CLI: open mode until a key exists, keys/teams/orgs through the store or
the API, usage reports — and key material never appears anywhere after its creation: not in
logs, error bodies, the admin API, the database or the spool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from polyroute.surface.admin.openapi import openapi
from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, admin, chat_body, ok
from tests.support.sim import SimServer
from tests.test_limits_budget import keyed_config

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "polyroute", *args], capture_output=True,
                          text=True, timeout=60, env=full, cwd=ROOT)


def chat(gw: GatewayProcess, key: str | None, header: str = "Authorization",
         body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers[header] = f"Bearer {key}" if header == "Authorization" else key
    request = urllib.request.Request(f"{gw.base_url}/chat/completions", method="POST",
                                     data=json.dumps(body or chat_body()).encode(),
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def sim() -> Any:
    with SimServer(api_key=SIM_KEY) as server:
        yield server


def test_open_mode_until_a_key_is_created_with_the_cli(sim: SimServer) -> None:
    config = keyed_config(sim, auth={"refresh_s": 0.2})
    config["model_groups"]["other"] = config["model_groups"]["chat"]
    with GatewayProcess(config, {"SIM_KEY": SIM_KEY}) as gw:
        assert "OPEN MODE" in gw.log()
        assert chat(gw, None)[0] == 200 and chat(gw, "anything")[0] == 200
        assert admin(gw, "GET", "/admin/keys")[0] == 403  # no master key: API off
        cfg = str(gw.config_path)
        made = cli("teams", "create", "web", "--rpm", "100", "--models", "chat",
                   "--config", cfg, env={"SIM_KEY": SIM_KEY})
        assert made.returncode == 0, made.stderr
        made = cli("keys", "create", "--team", "web", "--name", "laptop", "--config", cfg,
                   env={"SIM_KEY": SIM_KEY})
        assert made.returncode == 0, made.stderr
        key = json.loads(made.stdout)["key"]
        assert "shown only this once" in made.stderr
        time.sleep(0.6)  # the gateway's refresh picks the key up
        status, body = chat(gw, None)
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        assert chat(gw, key)[0] == 200
        assert chat(gw, key, header="x-api-key")[0] == 200
        status, body = chat(gw, key, body=chat_body("other"))
        assert status == 403 and "may not use" in body["error"]["message"]
        listed = cli("keys", "list", "--config", cfg, env={"SIM_KEY": SIM_KEY})
        assert listed.returncode == 0 and key.split("-")[-1] not in listed.stdout
        assert json.loads(listed.stdout)["data"][0]["name"] == "laptop"


def test_budget_from_the_config_reports_the_spend_that_usage_shows(sim: SimServer) -> None:
    """`budget … --config` opens the database directly: its spend must come from the ledger,
    as `usage` does, not from a fresh process's empty counters."""
    config = keyed_config(sim, auth={"refresh_s": 0.2})
    env = {"SIM_KEY": SIM_KEY}
    with GatewayProcess(config, env) as gw:
        cfg = str(gw.config_path)
        made = cli("keys", "create", "--daily-budget", "5", "--config", cfg, env=env)
        assert made.returncode == 0, made.stderr
        key, key_id = json.loads(made.stdout)["key"], json.loads(made.stdout)["id"]
        time.sleep(0.6)  # the gateway's refresh picks the key up
        for _ in range(3):
            assert chat(gw, key)[0] == 200
        deadline = time.monotonic() + 20
        while True:  # the ledger flushes every 0.1 s; the spool may lag on a loaded machine
            usage = cli("usage", "--by", "key", "--since", "1h", "--json", "--config", cfg,
                        env=env)
            assert usage.returncode == 0, usage.stderr
            rows = json.loads(usage.stdout)["data"]
            if (rows and rows[0]["requests"] == 3) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert rows[0]["requests"] == 3 and rows[0]["cost_usd"] > 0
        shown = cli("budget", "key", key_id, "--config", cfg, env=env)
        assert shown.returncode == 0, shown.stderr
        assert "OPEN MODE" not in shown.stderr
        budget = json.loads(shown.stdout)
        assert budget["spent_today_usd"] == pytest.approx(rows[0]["cost_usd"])
        assert budget["spent_total_usd"] == pytest.approx(rows[0]["cost_usd"])
        assert budget["daily_budget_usd"] == 5


def test_admin_api_usage_and_no_key_material_anywhere(sim: SimServer) -> None:
    config = keyed_config(sim, auth={"master_key": "${PR_MASTER}"})
    env = {"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}
    with GatewayProcess(config, env, log_level="DEBUG") as gw:
        assert admin(gw, "GET", "/admin/keys", key="wrong")[0] == 401
        ok(admin(gw, "POST", "/admin/orgs", {"id": "acme", "monthly_budget_usd": 100}))
        ok(admin(gw, "POST", "/admin/teams", {"id": "search", "org": "acme", "tpm": 100_000}))
        assert admin(gw, "POST", "/admin/teams", {"id": "x", "org": "nope"})[0] == 400
        assert admin(gw, "POST", "/admin/keys", {"rpm": -1})[0] == 400
        created = ok(admin(gw, "POST", "/admin/keys",
                           {"team": "search", "name": "ci", "rpm": 50, "tags": {"env": "ci"},
                            "expires_in_s": 3600}))
        key, key_id = created["key"], created["id"]
        secret = key.split("-", 3)[3]
        assert created["org"] == "acme" and created["expires_at"] > time.time()
        for _ in range(3):
            assert chat(gw, key)[0] == 200
        # a wrong secret for a real key id, and the key itself after revocation
        status, body = chat(gw, key[:-4] + "AAAA")
        assert status == 401 and secret not in json.dumps(body)
        patched = ok(admin(gw, "PATCH", f"/admin/keys/{key_id}", {"rpm": 70, "name": "ci2"}))
        assert patched["rpm"] == 70 and patched["team"] == "search"
        budget = ok(admin(gw, "GET", f"/admin/keys/{key_id}/budget"))
        assert budget["spent_total_usd"] > 0 and budget["rpm"] == 70
        assert ok(admin(gw, "GET", "/admin/orgs/acme/budget"))["monthly_budget_usd"] == 100
        time.sleep(0.4)  # the ledger flushes
        usage = ok(admin(gw, "GET", "/admin/usage?by=vendor,model&since=1h&team=search"))
        assert usage["data"][0]["group"] == {"vendor": "sim", "model": "chat"}
        assert usage["data"][0]["requests"] == 3 and usage["data"][0]["cost_usd"] > 0
        out = cli("usage", "--by", "vendor", "--since", "7d", "--url", gw.base_url,
                  env={"POLYROUTE_MASTER_KEY": MASTER_KEY})
        assert out.returncode == 0, out.stderr
        assert "sim" in out.stdout and "cost_usd" in out.stdout
        revoked = ok(admin(gw, "DELETE", f"/admin/keys/{key_id}"))
        assert revoked["revoked"] is True
        status, body = chat(gw, key)
        assert status == 401 and "revoked" in body["error"]["message"]
        assert admin(gw, "GET", "/admin/keys/nope")[0] == 404

        seen = json.dumps([admin(gw, "GET", p)[1] for p in (
            "/admin/keys", f"/admin/keys/{key_id}", "/admin/status",
            "/admin/usage?by=key,team,org&since=1d", "/admin/teams", "/admin/orgs")])
        assert key_id in seen and secret not in seen and key not in seen
        log = gw.log()
        assert secret not in log and MASTER_KEY not in log and SIM_KEY not in log
        for path in [gw.db_path, *gw.dir.glob("polyroute.db*"), *gw.dir.rglob("*.seg")]:
            assert secret.encode() not in Path(path).read_bytes(), path


def test_openapi_document_is_current() -> None:
    written = json.loads((ROOT / "docs" / "admin-openapi.json").read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(openapi())), \
        "regenerate: polyroute admin openapi > docs/admin-openapi.json"
    paths = written["paths"]
    assert {"/admin/keys", "/admin/teams", "/admin/orgs", "/admin/usage"} <= set(paths)
