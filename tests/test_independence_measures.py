"""Issue 14, items 2 and 3: dependence measured from traffic recorded through the real
LedgerWriter (SQLite, and PostgreSQL once), and the single points of vendor failure."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from polyroute.config import load_config
from polyroute.independence.check import check
from polyroute.independence.measures import hhi, measure
from polyroute.independence.render import svg, text
from polyroute.independence.topology import Topology
from polyroute.storage import postgres, sqlite
from polyroute.storage.usage import TrafficRow, traffic
from tests.support.independence import DAY1, DAY2, record, write_config
from tests.support.postgres import SERVER

HHI_130 = (90**2 + 30**2 + 10**2) / 130**2 * 10_000  # 5384.6: openai 90, anthropic 30, google 10


async def _sqlite_rows(tmp_path: Path, groups: tuple[str, ...] = ("chat", "structured",
                                                                   "solo")) -> list[TrafficRow]:
    db = await sqlite.open_database(str(tmp_path / "ledger.sqlite"))
    try:
        await record(db, tmp_path / "spool", groups)
        return await traffic(db, DAY1, DAY2 + 86_400)
    finally:
        await db.close()


def _topology(tmp_path: Path) -> Topology:
    return Topology.of(load_config(str(write_config(tmp_path)), {}))


def test_hhi_bounds() -> None:
    assert hhi([1.0]) == 10_000
    assert hhi([1.0, 1.0, 1.0, 1.0]) == pytest.approx(2_500)
    assert hhi([]) == 0.0


async def test_shares_hhi_and_captive_traffic_from_the_ledger(tmp_path: Path) -> None:
    rows = await _sqlite_rows(tmp_path)
    report = measure(rows, _topology(tmp_path), DAY1, DAY2 + 86_400)
    assert report.requests == 260  # the failed requests are not served traffic
    gateway = report.find("all", "*", "vendor")
    assert gateway is not None
    assert [(s.name, s.requests) for s in gateway.shares] == [
        ("openai", 180), ("anthropic", 60), ("google", 20)]
    assert gateway.hhi_requests == pytest.approx(HHI_130)
    assert gateway.top == "openai" and gateway.top_share == pytest.approx(90 / 130)
    # spend: openai 60×.01 + 20×.005 + 10×.03 = 1.0, anthropic 0.6, google 0.01 per day
    spend = {s.name: s.spend_share for s in gateway.shares}
    assert spend["openai"] == pytest.approx(1.0 / 1.61)
    assert gateway.hhi_spend == pytest.approx((1.0**2 + 0.6**2 + 0.01**2) / 1.61**2 * 10_000)
    cloud = report.find("all", "*", "cloud")
    assert cloud is not None and {s.name for s in cloud.shares} == {"azure", "aws", "gcp"}
    team = report.find("team", "data", "vendor")
    assert team is not None and team.top == "openai" and team.top_share == pytest.approx(2 / 3)
    chat = report.find("group", "chat", "region")
    assert chat is not None and chat.top == "eastus" and chat.top_share == pytest.approx(0.6)
    # structured outputs only gpt-4o-mini offers in its group: that traffic cannot move
    assert [(c.group, c.team, c.vendor, c.features, c.requests) for c in report.captive] == [
        ("structured", "data", "openai", ["json_schema"], 40)]
    assert {(p.day, p.vendor): p.requests for p in report.series}[("2026-12-02", "google")] == 10
    rendered = text(report)
    assert "json_schema" in rendered and "openai 69%" in rendered
    chart = svg(report)
    assert chart.startswith("<svg") and chart.count("<rect") == 2 * 3 + 3


async def test_single_points_of_failure(tmp_path: Path) -> None:
    rows = await _sqlite_rows(tmp_path)
    topology = _topology(tmp_path)
    findings = check(rows, topology, domains=("vendor",))
    got = {(f.lost, f.scope, f.name): (f.requests_lost, f.requests, f.broken) for f in findings}
    assert got == {
        ("openai", "group", "structured"): (40, 40, ["json_schema"]),
        ("openai", "group", "solo"): (20, 20, ["no other deployment"]),  # haiku: not equivalent
        ("openai", "team", "data"): (40, 60, ["json_schema"]),
        ("openai", "team", "web"): (20, 200, ["no other deployment"]),
    }
    # losing a cloud or a region takes down the same, since each vendor sits in one here
    assert len(check(rows, topology)) == 12
    assert {(f.scope, f.name) for f in check(rows, topology, ("cloud",), tolerate=0.5)} == {
        ("group", "structured"), ("group", "solo"), ("team", "data")}


async def test_no_traffic_still_finds_a_group_one_vendor_serves(tmp_path: Path) -> None:
    findings = check([], _topology(tmp_path), domains=("vendor",))
    assert [(f.lost, f.name, f.broken) for f in findings] == [
        ("openai", "solo", ["no other deployment (no traffic recorded)"])]


async def test_postgres_gives_the_same_measures(tmp_path: Path) -> None:
    name = f"polyroute_indep_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{SERVER}/test")
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        db = await postgres.open_database(f"{SERVER}/{name}")
        try:
            await record(db, tmp_path / "spool")
            rows = await traffic(db, DAY1, DAY2 + 86_400)
        finally:
            await db.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
    lite = await _sqlite_rows(tmp_path / "lite")
    assert sorted(rows, key=repr) == sorted(lite, key=repr)
    report = measure(rows, _topology(tmp_path), DAY1, DAY2 + 86_400)
    gateway = report.find("all", "*", "vendor")
    assert gateway is not None and gateway.hhi_requests == pytest.approx(HHI_130)
