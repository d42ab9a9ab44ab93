"""``polyroute independence report | check`` as a real process over a recorded ledger: the
report in text, JSON and SVG, and the check's exit code gating CI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from polyroute.storage import sqlite
from tests.support.independence import THREE_VENDORS, record

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "polyroute", "independence", *args],
                          capture_output=True, text=True, timeout=120, env=env, check=False)


async def _config(tmp_path: Path, text: str, groups: tuple[str, ...]) -> str:
    db_path = tmp_path / "ledger.sqlite"
    db = await sqlite.open_database(str(db_path))
    try:
        await record(db, tmp_path / "spool-test", groups)
    finally:
        await db.close()
    path = tmp_path / "polyroute.yaml"
    path.write_text(f"storage: {{sqlite_path: {db_path}}}\n{text}", encoding="utf-8")
    return str(path)


async def test_report_text_json_and_chart(tmp_path: Path) -> None:
    config = await _config(tmp_path, THREE_VENDORS, ("chat", "structured", "solo"))
    chart, dump = tmp_path / "shares.svg", tmp_path / "report.json"
    done = _cli("report", "--config", config, "--since", "2026-11-30", "--until",
                "2026-12-03", "--svg", str(chart), "--json", str(dump))
    assert done.returncode == 0, done.stderr
    assert "gateway" in done.stdout and "openai 69%" in done.stdout
    assert "structured  data  openai  json_schema  40" in done.stdout
    report = json.loads(dump.read_text())
    assert report["requests"] == 260 and report["captive"][0]["group"] == "structured"
    assert chart.read_text().startswith("<svg")
    as_json = _cli("report", "--config", config, "--since", "2026-11-30", "--format", "json")
    assert json.loads(as_json.stdout)["concentrations"][0]["top"] == "openai"


async def test_check_exit_code_gates(tmp_path: Path) -> None:
    config = await _config(tmp_path, THREE_VENDORS, ("chat", "structured", "solo"))
    found = _cli("check", "--config", config, "--since", "2026-11-30", "--domains", "vendor")
    assert found.returncode == 1, found.stderr
    assert "losing vendor openai takes down 100% of group structured (40 of 40 requests): " \
           "json_schema" in found.stdout
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    clean = await _config(clean_dir, THREE_VENDORS.split("  structured:")[0], ("chat",))
    ok = _cli("check", "--config", clean, "--since", "2026-11-30")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "no single point of vendor failure" in ok.stdout
    bad = _cli("check", "--config", clean, "--domains", "planet")
    assert bad.returncode == 2 and "unknown domain planet" in bad.stderr
