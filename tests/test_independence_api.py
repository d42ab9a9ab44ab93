"""Issue 14, item 2: the dependence measures in the admin API (GET /admin/independence) and
in /metrics, measured from the ledger by a background task, off the request path."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from polyroute.app import build_app
from polyroute.config import load_config
from polyroute.storage import sqlite
from tests.support.independence import THREE_VENDORS, record

MASTER = "mk-independence-test-0123456789"


async def test_admin_endpoint_and_metrics(tmp_path: Path) -> None:
    db_path = tmp_path / "ledger.sqlite"
    day1 = time.time() - 2 * 86_400
    db = await sqlite.open_database(str(db_path))
    try:
        await record(db, tmp_path / "spool-test", day1=day1)
    finally:
        await db.close()
    path = tmp_path / "polyroute.yaml"
    path.write_text(f"""storage: {{sqlite_path: {db_path}, spool_dir: {tmp_path / "spool"}}}
auth: {{master_key: "${{MK}}"}}
metrics: {{independence_interval_s: 0.05}}
{THREE_VENDORS}""", encoding="utf-8")
    config = load_config(str(path), {"MK": MASTER})
    async with TestClient(TestServer(build_app(config), host="127.0.0.1")) as client:
        headers = {"Authorization": f"Bearer {MASTER}"}
        refused = await client.get("/admin/independence")
        assert refused.status == 401
        answer = await client.get("/admin/independence?since=7d", headers=headers)
        assert answer.status == 200, await answer.text()
        body = await answer.json()
        gateway = body["report"]["concentrations"][0]
        assert (gateway["scope"], gateway["dimension"], gateway["top"]) == (
            "all", "vendor", "openai")
        assert round(gateway["hhi_requests"]) == 5385
        assert {(f["lost"], f["name"]) for f in body["findings"]
                if f["domain"] == "vendor"} == {("openai", "structured"), ("openai", "solo"),
                                                ("openai", "data"), ("openai", "web")}
        bad = await client.get("/admin/independence?since=yesterday", headers=headers)
        assert bad.status == 400 and (await bad.json())["error"]["param"] == "since"
        text = ""
        for _ in range(100):  # the gauges come from a background task
            text = await (await client.get("/metrics")).text()
            if "polyroute_dependence_hhi{" in text:
                break
            await asyncio.sleep(0.05)
        assert ('polyroute_dependence_share{dimension="vendor",kind="requests",scope="all",'
                'scope_name="*",supplier="google"} 0.0769') in text
        assert ('polyroute_dependence_captive_requests{model_group="structured",'
                'vendor="openai"} 40.0') in text
