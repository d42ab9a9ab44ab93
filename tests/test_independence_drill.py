"""Issue 14, item 5: ``polyroute drill --lose VENDOR --replay SINCE`` replays the shape of the
ledger's traffic against simulators with the vendor gone (a real process, real sockets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from polyroute.config import load_config
from polyroute.drill.replay import Replayed, readiness, summarise
from polyroute.storage import sqlite
from polyroute.storage.usage import ShapeRow
from tests.support.independence import THREE_VENDORS, record, write_config

ROOT = Path(__file__).resolve().parents[1]


def _shape(group: str, deployment: str, features: str | None = None) -> ShapeRow:
    return ShapeRow(0.0, "chat", group, group, "t", deployment.split("/")[0], deployment,
                    False, features, 1_000_000, 100_000, 50.0, None)


def test_readiness_score_definition() -> None:
    assert readiness(1.0, 0.0, 0.0, 4.0, 4.0) == 100
    assert readiness(0.9, 0.3, 0.0, 4.0, 4.0) == 80  # cost up more than 25 %
    assert readiness(0.5, 0.0, 0.6, 4.0, 3.0) == 30  # slower by half, and a lower tier
    assert readiness(0.05, 1.0, 1.0, 5.0, 1.0) == 0


def test_summary_prices_tiers_and_broken_capabilities(tmp_path: Path) -> None:
    config = load_config(str(write_config(tmp_path)), {})
    deployments = {d.name: d for g in config.groups.values() for d in g.deployments}
    gpt4o, sonnet = _shape("chat", "openai/gpt-4o"), _shape("chat", "openai/gpt-4o")
    schema = _shape("structured", "openai/gpt-4o-mini", "json_schema")
    pairs = [
        (Replayed(gpt4o, True, 20.0, "openai/gpt-4o"),
         Replayed(gpt4o, True, 30.0, "anthropic/claude-sonnet-4-5")),
        (Replayed(sonnet, True, 20.0, "openai/gpt-4o"),
         Replayed(sonnet, True, 30.0, "google/gemini-2.5-flash")),
        (Replayed(schema, True, 20.0, "openai/gpt-4o-mini"),
         Replayed(schema, True, 20.0, "anthropic/claude-haiku-4-5")),
    ]
    by = {(s.scope, s.name): s for s in summarise(pairs, deployments)}
    chat = by[("group", "chat")]
    assert (chat.served, chat.degraded, chat.failed, chat.served_share) == (2, 0, 0, 1.0)
    # 1M in + 100k out: gpt-4o $2.5 + $1 twice = 7.0; sonnet 3 + 1.5, flash 0.3 + 0.25 = 5.05
    assert round(chat.cost_before_usd, 6) == 7.0 and round(chat.cost_after_usd, 6) == 5.05
    assert (chat.tier_before, chat.tier_after) == (4.0, 3.5)
    assert chat.latency_change == 0.5 and chat.readiness == 90  # a lower tier
    structured = by[("group", "structured")]
    assert (structured.served, structured.degraded, structured.broken) == (
        0, 1, {"json_schema": 1})
    assert structured.readiness == 0
    assert by[("team", "t")].requests == 3


def test_exit_drill_replays_the_ledger_without_a_vendor(tmp_path: Path) -> None:
    import asyncio

    db_path = tmp_path / "ledger.sqlite"

    async def fill() -> None:
        db = await sqlite.open_database(str(db_path))
        try:
            await record(db, tmp_path / "spool-test", ("chat", "structured", "solo"))
        finally:
            await db.close()

    asyncio.run(fill())
    config = tmp_path / "polyroute.yaml"
    config.write_text(f"storage: {{sqlite_path: {db_path}}}\n{THREE_VENDORS}", encoding="utf-8")
    out = tmp_path / "drill.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "polyroute", "drill", "--config", str(config), "--lose", "openai",
         "--replay", "2026-11-30", "--until", "2026-12-03", "--replay-span", "1",
         "--sim-latency-ms", "5", "--json", str(out), "--min-readiness", "60"],
        capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 1, done.stdout + done.stderr  # structured and solo cannot exit
    assert "group structured exit readiness 0 is below --min-readiness 60" in done.stderr
    report = json.loads(out.read_text())
    assert report["lost"] == "openai" and report["requests"] == 260
    by = {(s["scope"], s["name"]): s for s in report["scopes"]}
    assert by[("group", "chat")]["served_share"] == 1.0
    assert by[("group", "chat")]["requests"] == 200
    # answered by the Anthropic simulator, but by deployments that lack what the traffic used
    assert by[("group", "structured")]["broken"] == {"json_schema": 40}
    assert by[("group", "structured")]["served"] == 0
    assert by[("group", "solo")]["broken"] == {"equivalence": 20}
    assert by[("group", "solo")]["readiness"] == 0
    assert by[("team", "data")]["served"] == 20
    assert "losing openai: 260 recorded requests replayed" in done.stdout
