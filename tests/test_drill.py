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


TWO_VENDORS = """
providers:
  openai: {base_url: "https://api.openai.com/v1", api_key: "${OPENAI_API_KEY}"}
  groq: {base_url: "https://api.groq.com/openai/v1", api_key: "${GROQ_API_KEY}"}
model_groups:
  chat:
    routing: weighted
    deployments:
      - {provider: openai, model: gpt-4o-mini}
      - {provider: groq, model: llama-3.1-8b-instant}
"""


def drill(
    tmp_path: Path, *args: str, config_text: str = CONFIG
) -> tuple[subprocess.CompletedProcess[str], dict]:  # type: ignore[type-arg]
    config = tmp_path / "polyroute.yaml"
    config.write_text(config_text)
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


def test_one_of_two_vendors_wholly_down_serves_everything(tmp_path: Path) -> None:
    """Weighted over two vendors, one dead: every request is served, and the dead vendor
    receives only the requests that opened its circuit (5 failed requests, plus what was
    already in flight at concurrency 4); the 30 s cool-down outlasts the drill: no probe."""
    result, report = drill(tmp_path, "--fail", "openai=unavailable", "--min-served", "1",
                           config_text=TWO_VENDORS)
    assert result.returncode == 0, result.stderr
    (chat,) = report["groups"]
    assert chat["served"] == 60 and chat["failed"] == 0
    assert 5 <= report["upstream_requests"]["openai"] <= 5 + 4
    assert report["upstream_requests"]["groq"] == 60
    assert "requests each provider received while failing: groq 60, openai" in result.stdout


def test_healthy_drill_and_bad_flags(tmp_path: Path) -> None:
    result, report = drill(tmp_path, "--stream")
    assert result.returncode == 0, result.stderr
    assert all(g["failed"] == 0 and g["served"] == 30 for g in report["groups"])
    result, _ = drill(tmp_path, "--fail", "anthropic=unavailable")
    assert result.returncode == 2 and "no provider named anthropic" in result.stderr
    result, _ = drill(tmp_path, "--fail", "openai")
    assert result.returncode == 2 and "PROVIDER=FAULT" in result.stderr


def zero_config_drill(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict]:  # type: ignore[type-arg]
    out = tmp_path / "zero.json"
    out.unlink(missing_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "polyroute", "drill", "--concurrency", "8", "--sim-latency-ms",
         "5", "--json", str(out), *args],
        capture_output=True, text=True, timeout=180,
        env={"PATH": "", **(env or {})})
    report = json.loads(out.read_text()) if out.exists() else {}
    return result, report


def test_zero_config_drill_of_a_flaky_only_deployment_serves_95_percent(tmp_path: Path) -> None:
    """The issue's drill: no config, no key; one deployment answers 30 % of requests with a
    5xx. Circuits and retries together still serve at least 95 % (99 % expected)."""
    result, report = zero_config_drill(
        tmp_path, "--requests", "200", "--fail", "openai=server_error;probability=0.3",
        "--min-served", "0.95")
    assert result.returncode == 0, result.stderr + result.stdout
    (group,) = report["groups"]
    assert group["group"] == "openai/drill"
    assert group["served"] >= 190 and group["served"] + group["failed"] == 200
    assert 1.2 <= group["attempts_per_request"] <= 1.8  # retries, not a storm


def test_min_served_gates_and_zero_config_needs_a_vendor(tmp_path: Path) -> None:
    result, report = zero_config_drill(
        tmp_path, "--requests", "40", "--fail", "openai=unavailable", "--min-served", "0.5")
    assert result.returncode == 1
    assert "openai/drill served 0 of 40 requests, below --min-served 0.5" in result.stderr
    assert report["groups"][0]["failed"] == 40  # the report is still written
    # A dead lone deployment stays cheap: a few requests retry, then one attempt each (panic).
    assert report["groups"][0]["attempts_per_request"] < 2
    result, _ = zero_config_drill(tmp_path, "--requests", "10")
    assert result.returncode == 2 and "no vendor found in the environment" in result.stderr
    result, _ = zero_config_drill(tmp_path, "--min-served", "95")
    assert result.returncode == 2 and "between 0 and 1" in result.stderr


def test_zero_config_drill_uses_the_vendors_of_the_environment(tmp_path: Path) -> None:
    result, report = zero_config_drill(
        tmp_path, "--requests", "20", "--stream", "--min-served", "1",
        env={"OPENAI_API_KEY": "sk-not-used", "GROQ_API_KEY": "gsk-not-used"})
    assert result.returncode == 0, result.stderr
    assert {g["group"]: g["served"] for g in report["groups"]} == {
        "groq/drill": 10, "openai/drill": 10}
    result, report = zero_config_drill(
        tmp_path, "--requests", "10", "--models", "anthropic/claude-x,openai/gpt-y",
        "--fail", "anthropic=overloaded")
    assert result.returncode == 0, result.stderr
    served = {g["group"]: g["served"] for g in report["groups"]}
    assert served == {"anthropic/claude-x": 0, "openai/gpt-y": 5}
