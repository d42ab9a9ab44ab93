"""External guardrails (issue 11, item 2): a webhook checked before routing and on answers
(whole and streamed), each with a time budget, failing open or closed as configured —
through the openai SDK against a gateway, a simulator that records what it received, and a
real HTTP webhook."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer
from tests.support.webhook import Webhook

KEY = "sk-guardrail-upstream-31"


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[GatewayProcess, SimServer, Webhook]]:
    hook = Webhook()
    with SimServer(api_key=KEY) as sim:
        config = {
            "providers": {"sim": {"base_url": sim.base_url, "api_key": "${KEY}"}},
            "model_groups": {"chat": {"deployments": [{"provider": "sim", "model": "echo"}]}},
            "guardrails": {
                "a-open": {"url": f"{hook.url}/open", "timeout_s": 1.0, "on_error": "open"},
                "b-closed": {"url": f"{hook.url}/closed", "timeout_s": 1.0,
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


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_is_checked_before_the_client_gets_it(
        setup: tuple[GatewayProcess, SimServer, Webhook], stream: bool) -> None:
    gw, _, hook = setup
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(gw, "say answer-bad", stream)  # the prompt passes; the echoed answer does not
    assert "guardrail 'b-closed' (response)" in refused.value.message
    assert ("/closed", "response") in {(p, b["stage"]) for p, b in hook.seen}


@pytest.mark.parametrize("stream", [False, True])
def test_a_structured_output_must_match_the_schema_asked_for(
        setup: tuple[GatewayProcess, SimServer, Webhook], stream: bool) -> None:
    gw, _, _ = setup
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}}

    def ask(text: str) -> str:
        messages: Any = [{"role": "user", "content": text}]
        if stream:  # held until the whole document is there: a part of JSON is not JSON
            chunks = client.chat.completions.create(model="chat", messages=messages,
                                                    response_format=fmt, stream=True)
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        reply = client.chat.completions.create(model="chat", messages=messages,
                                               response_format=fmt)
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
