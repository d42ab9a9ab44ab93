"""External guardrails (issue 11, item 2): a webhook checked before routing and on whole
answers, each with a time budget, failing open or closed as configured — through the openai
SDK against a gateway, a simulator that records what it received, and a real HTTP webhook."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest

from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

KEY = "sk-guardrail-upstream-31"


class Webhook:
    """/open and /closed: refuse 'forbidden' (and, on answers, 'answer-bad'); /open is slow
    on 'slow', /closed on 'stall'."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.seen.append((self.path, body))
                text = body["text"]
                if (self.path == "/open" and "slow" in text) or (
                        self.path == "/closed" and "stall" in text):
                    time.sleep(1.5)
                allow = "forbidden" not in text and not (
                    body["stage"] == "response" and "answer-bad" in text)
                out = json.dumps({"allow": allow, "reason": None if allow else
                                  f"{body['stage']} mentions something forbidden"}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the gateway stopped waiting: the point of the slow cases

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[GatewayProcess, SimServer, Webhook]]:
    hook = Webhook()
    with SimServer(api_key=KEY) as sim:
        config = {
            "providers": {"sim": {"base_url": sim.base_url, "api_key": "${KEY}"}},
            "model_groups": {"chat": {"deployments": [{"provider": "sim", "model": "echo"}]}},
            "guardrails": {
                "a-open": {"url": f"{hook.url}/open", "timeout_s": 0.5, "on_error": "open"},
                "b-closed": {"url": f"{hook.url}/closed", "timeout_s": 0.5,
                             "stages": ["request", "response"]},
                "c-schema": {"type": "json_schema"},
            },
        }
        with GatewayProcess(config, {"KEY": KEY}) as gw:
            yield gw, sim, hook
    hook.server.shutdown()


def chat(gw: GatewayProcess, text: str, stream: bool = False) -> str:
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    messages: Any = [{"role": "user", "content": text}]
    if stream:
        chunks = client.chat.completions.create(model="chat", messages=messages, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reply = client.chat.completions.create(model="chat", messages=messages)
    return reply.choices[0].message.content or ""


@pytest.mark.parametrize("stream", [False, True])
def test_the_webhook_passes_refuses_and_fails_open_or_closed(
        setup: tuple[GatewayProcess, SimServer, Webhook], stream: bool) -> None:
    gw, sim, hook = setup
    assert chat(gw, "hello", stream) == "hello"
    assert {(path, body["stage"], body["text"]) for path, body in hook.seen[-3:]} >= {
        ("/open", "request", "hello"), ("/closed", "request", "hello")}
    upstream = sim.stats()["requests_total"]
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(gw, "a forbidden topic", stream)
    assert "guardrail 'a-open' (request)" in refused.value.message
    assert sim.stats()["requests_total"] == upstream  # never sent
    # the fail-open guardrail is late: the request goes through
    assert chat(gw, "slow please", stream) == "slow please"
    # the fail-closed one is late: 503, nothing sent
    upstream = sim.stats()["requests_total"]
    with pytest.raises(openai.InternalServerError) as late:
        chat(gw, "stall please", stream)
    assert late.value.status_code == 503 and "'b-closed'" in late.value.message
    assert "fails closed" in late.value.message
    assert sim.stats()["requests_total"] == upstream


def test_a_whole_answer_is_checked_before_the_client_gets_it(
        setup: tuple[GatewayProcess, SimServer, Webhook]) -> None:
    gw, _, hook = setup
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(gw, "say answer-bad")  # the prompt passes; the echoed answer does not
    assert "guardrail 'b-closed' (response)" in refused.value.message
    assert ("/closed", "response") in {(p, b["stage"]) for p, b in hook.seen}


def test_a_structured_output_must_match_the_schema_asked_for(
        setup: tuple[GatewayProcess, SimServer, Webhook]) -> None:
    gw, _, _ = setup
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}}

    def ask(text: str) -> str:
        reply = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": text}], response_format=fmt)
        return reply.choices[0].message.content or ""

    assert ask('{"a": 1}') == '{"a": 1}'  # the echo is valid
    with pytest.raises(openai.PermissionDeniedError) as wrong:
        ask('{"a": "one"}')
    assert "guardrail 'c-schema' (response)" in wrong.value.message
    assert "does not match the schema at a: 'one' is not of type 'integer'" in \
        wrong.value.message
    with pytest.raises(openai.PermissionDeniedError) as not_json:
        ask("plain words")
    assert "the answer is not JSON" in not_json.value.message
