"""Ledger rows (the one record per request), Prometheus metrics, and no secret in any log
line."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time

import openai

from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess

USER = [{"role": "user", "content": "hello"}]


def rows(gateway: GatewayProcess, request_id: str, timeout: float = 5) -> list[sqlite3.Row]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway.db_path.exists():
            with sqlite3.connect(gateway.db_path) as conn:
                conn.row_factory = sqlite3.Row
                # The client's x-request-id is kept as client_request_id; the gateway's own
                # request_id is generated.
                with contextlib.suppress(sqlite3.OperationalError):  # not created yet
                    found = conn.execute("SELECT * FROM ledger WHERE client_request_id = ?",
                                         (request_id,)).fetchall()
                    if found:
                        return found
        time.sleep(0.05)
    raise AssertionError(f"no ledger row for {request_id}")


def test_one_ledger_row_per_request(gateway: GatewayProcess) -> None:
    """Open mode (no keys): the ledger is still written, one row per request, with what the
    request log used to hold (stream, time to first token, the attempt chain)."""
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="failover", messages=USER, extra_headers={"x-request-id": "req-log-1"})
    usage = raw.parse().usage
    assert usage is not None
    (row,) = rows(gateway, "req-log-1")
    assert row["model_group"] == "failover"
    assert row["deployment"] == "backup" and row["vendor"] == "sim"
    assert row["status"] == 200 and row["stream"] == 0 and row["ttft_ms"] is None
    assert row["key_id"] is None  # the anonymous caller of open mode
    chain = [(a[0], a[2]) for a in json.loads(row["attempts"])]
    assert chain == [("primary", "upstream_unavailable"), ("backup", "ok")]
    assert row["prompt_tokens"] == usage.prompt_tokens
    assert row["completion_tokens"] == usage.completion_tokens
    assert row["latency_ms"] > 0

    stream = client.chat.completions.create(model="chat", messages=USER, stream=True,
                                            extra_headers={"x-request-id": "req-log-2"})
    list(stream)
    (row,) = rows(gateway, "req-log-2")
    assert row["stream"] == 1 and row["status"] == 200
    assert row["completion_tokens"] > 0, "stream usage must be recorded even if not asked for"
    assert row["usage_estimated"] == 0
    assert row["ttft_ms"] is not None and row["ttft_ms"] <= row["latency_ms"]

    with contextlib.suppress(openai.APIStatusError):
        client.chat.completions.create(model="all-down", messages=USER,
                                       extra_headers={"x-request-id": "req-log-3"})
    (row,) = rows(gateway, "req-log-3")
    assert row["status"] == 500 and row["error_class"] == "all_deployments_failed"


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics(gateway: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    before = gateway.get("/metrics")[1].decode()
    client.chat.completions.create(model="failover", messages=USER)
    after = gateway.get("/metrics")[1].decode()
    def inc(name, **lbl):
        return (metric(after, name, **lbl) - metric(before, name, **lbl))
    assert inc("polyroute_requests_total", model_group="failover", status="200") == 1
    assert inc("polyroute_upstream_attempts_total", deployment="primary",
               outcome="upstream_unavailable") == 1
    assert inc("polyroute_upstream_attempts_total", deployment="backup", outcome="ok") == 1
    assert inc("polyroute_tokens_total", model_group="failover", kind="completion") > 0
    assert inc("polyroute_request_duration_seconds_count", model_group="failover") == 1
    assert "polyroute_errors_total" in after
    assert "polyroute_time_to_first_token_seconds" in after
    # The ledger's flusher reports what it wrote and what still waits in the spool.
    deadline = time.monotonic() + 5
    while metric(gateway.get("/metrics")[1].decode(), "polyroute_ledger_written_records") < 1:
        assert time.monotonic() < deadline, "the ledger wrote nothing"
        time.sleep(0.05)
    scraped = gateway.get("/metrics")[1].decode()
    assert metric(scraped, "polyroute_ledger_store_failing") == 0
    assert "polyroute_ledger_backlog_bytes" in scraped


def test_health_and_readiness(gateway: GatewayProcess) -> None:
    status, body = gateway.get("/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, body = gateway.get("/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready"


def test_key_never_logged_even_when_upstream_errors(gateway: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    for model in ("sim/x@server_error", "sim/x@reset_before_headers", "all-down"):
        with contextlib.suppress(openai.APIStatusError):
            client.chat.completions.create(model=model, messages=USER)
    assert SIM_KEY not in gateway.log()
