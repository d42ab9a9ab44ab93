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


async def test_the_ledger_records_the_capabilities_a_request_used(tmp_path: Path) -> None:
    import openai

    from polyroute.sim.server import start_sim
    from polyroute.sim.settings import SimSettings
    from polyroute.storage.usage import ledger_for

    sim = await start_sim(SimSettings(port=0))
    try:
        path = tmp_path / "polyroute.yaml"
        path.write_text(f"""storage: {{sqlite_path: {tmp_path / "p.sqlite"}}}
providers:
  openai: {{base_url: "{sim.base_url}", auth: none}}
model_groups:
  chat: {{deployments: [{{provider: openai, model: gpt-4o-mini}}]}}
""", encoding="utf-8")
        config = load_config(str(path), {})
        server = TestServer(build_app(config), host="127.0.0.1")
        async with TestClient(server):
            client = openai.AsyncOpenAI(api_key="unused", max_retries=0,
                                        base_url=str(server.make_url("/v1")))
            answer = await client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": "weather?"}],
                tools=[{"type": "function", "function": {
                    "name": "weather", "parameters": {"type": "object", "properties": {}}}}],
                response_format={"type": "json_schema", "json_schema": {
                    "name": "w", "schema": {"type": "object"}}})
            tooled = answer.headers["x-request-id"]
            plain = (await client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": "hi"}],
            )).headers["x-request-id"]
        db = await sqlite.open_database(str(tmp_path / "p.sqlite"))  # flushed at shutdown
        try:
            assert [r["features"] for r in await ledger_for(db, tooled)] == [
                "tools,json_schema"]
            assert [r["features"] for r in await ledger_for(db, plain)] == [None]
        finally:
            await db.close()
    finally:
        await sim.close()
