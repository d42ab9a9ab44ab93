"""`polyroute drill` reports what losing a vendor does to each model group."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CONFIG = """
providers:
  openai: {base_url: "https://api.openai.com/v1", api_key: "${OPENAI_API_KEY}"}
  groq: {base_url: "https://api.groq.com/openai/v1", api_key: "${GROQ_API_KEY}"}
model_groups:
  chat:
    routing: priority
    deployments:
      - {provider: openai, model: gpt-4o-mini}
      - {provider: groq, model: llama-3.1-8b-instant, priority: 1}
  openai-only:
    deployments: [{provider: openai, model: gpt-4o}]
"""


def drill(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:  # type: ignore[type-arg]
    config = tmp_path / "polyroute.yaml"
    config.write_text(CONFIG)
    out = tmp_path / "report.json"
    # No real keys and no real vendor: every provider is replaced by a loopback simulator.
    result = subprocess.run(
        [sys.executable, "-m", "polyroute", "drill", "--config", str(config), "--requests",
         "60", "--concurrency", "4", "--sim-latency-ms", "5", "--json", str(out), *args],
        capture_output=True, text=True, timeout=120, env={"PATH": ""})
    report = json.loads(out.read_text()) if out.exists() else {}
    return result, report


def test_losing_a_vendor(tmp_path: Path) -> None:
    result, report = drill(tmp_path, "--fail", "openai=unavailable")
    assert result.returncode == 0, result.stderr
    groups = {g["group"]: g for g in report["groups"]}
    chat, alone = groups["chat"], groups["openai-only"]
    assert chat["served"] == 30 and chat["failed"] == 0  # groq took over
    assert alone["served"] == 0 and alone["failed"] == 30
    assert any("closed→open" in t for t in chat["circuit_transitions"])
    assert 1.0 <= chat["attempts_per_request"] < 1.5  # the circuit spares most requests
    assert "openai=unavailable" in result.stdout and "chat" in result.stdout


def test_healthy_drill_and_bad_flags(tmp_path: Path) -> None:
    result, report = drill(tmp_path, "--stream")
    assert result.returncode == 0, result.stderr
    assert all(g["failed"] == 0 and g["served"] == 30 for g in report["groups"])
    result, _ = drill(tmp_path, "--fail", "anthropic=unavailable")
    assert result.returncode == 2 and "no provider named anthropic" in result.stderr
    result, _ = drill(tmp_path, "--fail", "openai")
    assert result.returncode == 2 and "PROVIDER=FAULT" in result.stderr
