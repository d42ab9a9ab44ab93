"""The request log: one redacted JSON line per request, to a rotated JSONL file, a webhook
(retried) and the 'polyroute.requests' logger; bounded queues that drop and count."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import pytest

from polyroute.model.record import Attempt, RequestRecord
from polyroute.model.usage import Usage
from polyroute.observability.request_log import FileSink, RequestLog, WebhookSink
from tests.conftest import SIM_KEY, gateway_config
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

SECRET_PROMPT = "the-prompt-must-not-be-logged-91c2"
HOOK_KEY = "hook-credential-5b1e77a09c"


class Webhook:
    """A loopback receiver that refuses its first ``fail_first`` batches with 503. With
    ``hold`` set, each POST signals ``arrived`` and waits for ``hold`` before answering."""

    def __init__(self, fail_first: int) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.refused = 0
        self.fail_first = fail_first
        self.auth: list[str] = []
        self.arrived = threading.Event()
        self.hold: threading.Event | None = None
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.auth.append(self.headers.get("Authorization", ""))
                hook.arrived.set()
                if hook.hold is not None:
                    hook.hold.wait(10)
                if hook.refused < hook.fail_first:
                    hook.refused += 1
                    self.send_response(503)
                else:
                    hook.batches.append(json.loads(body))
                    self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/lines"

    def lines(self) -> list[dict[str, Any]]:
        return [x for batch in self.batches for x in batch]


@pytest.fixture(scope="module")
def hook() -> Iterator[Webhook]:
    h = Webhook(fail_first=1)
    yield h
    h.server.shutdown()
    h.server.server_close()


@pytest.fixture(scope="module")
def logged(sim: SimServer, hook: Webhook, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[tuple[GatewayProcess, Path]]:
    path = tmp_path_factory.mktemp("logs") / "requests.jsonl"
    config = gateway_config(sim, logs={
        "requests": True, "flush_interval_s": 0.05, "file": {"path": str(path)},
        "webhook": {"url": hook.url, "headers": {"Authorization": "${HOOK_AUTH}"},
                    "retries": 3}})
    with GatewayProcess(config, env={"SIM_KEY": SIM_KEY, "HOOK_AUTH": f"Bearer {HOOK_KEY}"}) as gw:
        yield gw, path


def wait_for(check: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def file_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_one_line_per_request_in_every_sink(logged: tuple[GatewayProcess, Path],
                                            hook: Webhook) -> None:
    gw, path = logged
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="failover", messages=[{"role": "user", "content": SECRET_PROMPT}],
        extra_headers={"x-request-id": "log-line-1"})
    usage = raw.parse().usage
    assert usage is not None

    def mine(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [x for x in lines if x.get("client_request_id") == "log-line-1"]

    (line,) = wait_for(lambda: mine(file_lines(path)))
    assert line["request_id"] == raw.headers["x-request-id"]
    assert line["model"] == "failover" and line["deployment"] == "backup"
    assert line["status"] == 200 and line["latency_ms"] > 0
    assert [(a["deployment"], a["outcome"]) for a in line["attempts"]] == [
        ("primary", "upstream_unavailable"), ("backup", "ok")]
    assert line["prompt_tokens"] == usage.prompt_tokens
    assert line["completion_tokens"] == usage.completion_tokens

    # The webhook refused the first batch (503): it was retried, and nothing was lost.
    (hooked,) = wait_for(lambda: mine(hook.lines()))
    assert hooked == line
    assert hook.refused == 1 and all(a == f"Bearer {HOOK_KEY}" for a in hook.auth)

    log = wait_for(lambda: "log-line-1" in gw.log() and gw.log())
    assert SECRET_PROMPT not in path.read_text() and SECRET_PROMPT not in log
    assert SECRET_PROMPT not in json.dumps(hook.lines())
    assert SIM_KEY not in log and HOOK_KEY not in log
    _, metrics = gw.get("/metrics")
    assert b"polyroute_log_lines_dropped 0.0" in metrics


def record(i: int, **extra: Any) -> RequestRecord:
    return RequestRecord(f"r{i}", time.time(), "chat", "chat", model_group="chat",
                         deployment="d", vendor="v", latency_s=0.01,
                         attempts=[Attempt("d", "v", 0.01)],
                         usage=Usage(prompt_tokens=3, completion_tokens=4), **extra)


async def test_file_rotates_and_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    sink = FileSink(str(path), max_bytes=4096, backups=2)
    secret = "sk-upstream-secret-0123456789"
    request_log = RequestLog([sink], secrets=[secret], queue_size=50, flush_interval_s=0.01,
                             batch=5)
    for i in range(60):
        request_log.observe(record(i, team=secret))
    assert request_log.dropped == 10
    request_log.start()
    await asyncio.sleep(0.3)
    await request_log.aclose()
    assert request_log.written == 50 and request_log.failed == 0
    files = [path, tmp_path / "r.jsonl.1", tmp_path / "r.jsonl.2"]
    assert all(f.exists() for f in files) and not (tmp_path / "r.jsonl.3").exists()
    assert all(f.stat().st_size <= 4096 for f in files)
    kept = [json.loads(x) for f in reversed(files) for x in f.read_text().splitlines()]
    ids = [x["request_id"] for x in kept]
    assert ids == [f"r{i}" for i in range(50 - len(ids), 50)]  # the newest, in order
    assert all(secret not in json.dumps(x) for x in kept)
    assert all(x["team"] != secret for x in kept)


async def test_webhook_batches_are_requeued_across_flushes_within_the_bound() -> None:
    """A receiver that refuses (503) while more lines arrive, then recovers: the refused batch
    goes back to the front of the queue as far as the bound allows (the oldest beyond it
    dropped and counted), and after recovery every kept line arrives once, in order."""
    hook = Webhook(fail_first=1_000)
    hook.hold = threading.Event()
    sink = WebhookSink(hook.url, {}, retries=0, timeout_s=5)
    request_log = RequestLog([sink], queue_size=8, batch=5)
    (queue,) = request_log.sinks
    try:
        for i in range(5):
            request_log.observe(record(i))
        flush = asyncio.create_task(request_log._flush(queue))
        assert await asyncio.to_thread(hook.arrived.wait, 10)
        for i in range(5, 11):  # arrive while the first batch is in flight: 6 queued
            request_log.observe(record(i))
        hook.hold.set()
        assert await flush is False  # refused: requeued, the rest waits for the next flush
        # Room for 2 of the 5: r3 and r4 go back in front of r5…r10; r0…r2 are dropped.
        assert [r.request_id for r in queue.queue] == [f"r{i}" for i in range(3, 11)]
        assert (queue.requeued, request_log.dropped, request_log.failed) == (2, 3, 0)
        assert hook.batches == []

        assert await request_log._flush(queue) is False  # still down: requeued again whole
        assert queue.requeued == 7 and request_log.dropped == 3 and len(queue.queue) == 8

        hook.fail_first = 0  # the receiver recovers
        assert await request_log._flush(queue) is True
        assert [x["request_id"] for x in hook.lines()] == [f"r{i}" for i in range(3, 11)]
        assert (request_log.written, request_log.failed, request_log.dropped) == (8, 0, 3)

        # Down again at shutdown: the last flush cannot requeue, so those lines are failed.
        hook.fail_first = 1_000
        request_log.observe(record(11))
    finally:
        await request_log.aclose()
        hook.server.shutdown()
        hook.server.server_close()
    assert request_log.failed == 1 and not queue.queue


@pytest.mark.parametrize(("text", "key"), [
    ("tracing: {enabled: true, endpoint: 'ftp://collector/v1/traces'}", "tracing.endpoint"),
    ("tracing: {headers: {x-api-key: written-in-the-file}}", "tracing.headers.x-api-key"),
    ("logs: {webhook: {url: 'file:///etc/passwd'}}", "logs.webhook.url"),
    ("logs: {webhook: {url: 'http://h/x', headers: {Authorization: 'Bearer abc123456789'}}}",
     "logs.webhook.headers.Authorization"),
    ("logs: {file: {path: x.jsonl, max_bytes: 10}}", "logs.file.max_bytes"),
])
def test_bad_observability_config_is_one_line_naming_key_and_fix(
        tmp_path: Path, text: str, key: str) -> None:
    from polyroute.config import ConfigError, load_config

    path = tmp_path / "polyroute.yaml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), {})
    message = str(info.value)
    assert message.startswith(str(path)) and key in message and "fix:" in message
    assert "\n" not in message and "abc123456789" not in message
