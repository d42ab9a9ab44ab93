"""Anthropic to Anthropic, byte for byte: the official ``anthropic`` SDK → polyroute's
``/v1/messages`` → the Anthropic-protocol simulator. The simulator records the body it received
and the bytes it sent; the upstream must get the client's body with only ``model`` changed
(every other field's bytes untouched, fields polyroute does not model included), and the
client must get exactly the upstream's bytes, streamed and not. Other protocols still refuse
what they cannot carry, and failover, recovery and billing keep working."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx
import msgspec
import pytest

from polyroute.adapters.anthropic_messages import passthrough
from polyroute.engine.estimate import estimate_input_tokens
from polyroute.errors import StreamInterrupted, UpstreamProtocolError
from polyroute.model.chat import ChatChunk, ChunkChoice, Delta
from polyroute.sim.settings import DEFAULT_TEXT
from polyroute.surface.anthropic import decode as anthropic_in
from polyroute.surface.anthropic import encode as anthropic_out
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

OPENAI_KEY = "sk-openai-upstream-71c2"
ANTHROPIC_KEY = "sk-ant-upstream-4d0e"
USER = [{"role": "user", "content": "Say hello."}]
# Fields the canonical model cannot carry: before this issue the gateway refused them.
UNMODELED = {"container": "container_011CQ", "mcp_servers": [
    {"type": "url", "url": "https://mcp.example.com/sse", "name": "example"}]}
_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])


@pytest.fixture(scope="module")
def sims() -> Iterator[tuple[SimServer, SimServer]]:
    with SimServer(api_key=OPENAI_KEY) as oai, SimServer(api_key=ANTHROPIC_KEY) as ant:
        yield oai, ant


@pytest.fixture(scope="module")
def gateway(sims: tuple[SimServer, SimServer]) -> Iterator[GatewayProcess]:
    oai, ant = sims
    config = {
        "providers": {
            "oai": {"base_url": oai.base_url, "api_key": "${OAI_KEY}", "any_model": True},
            "ant": {"protocol": "anthropic", "base_url": ant.root_url,
                    "api_key": "${ANT_KEY}", "any_model": True},
        },
        "model_groups": {
            "claude": {"deployments": [{"provider": "ant", "model": "claude-sim"}]},
            "gpt": {"deployments": [{"provider": "oai", "model": "gpt-4o-mini"}]},
            # An OpenAI deployment first: a request it cannot carry goes to the Anthropic one.
            "mixed": {"routing": "priority", "deployments": [
                {"provider": "oai", "model": "gpt-4o-mini", "name": "mixed-gpt"},
                {"provider": "ant", "model": "claude-mixed", "name": "mixed-claude",
                 "priority": 1}]},
            "flaky": {"routing": "priority", "deployments": [
                {"provider": "ant", "model": "claude-a@rate_limit", "name": "flaky-a"},
                {"provider": "ant", "model": "claude-b", "name": "flaky-b", "priority": 1}]},
            "cut": {"routing": "priority", "deployments": [
                {"provider": "ant", "model": "claude-sim@stream_cut:after_chunks=2",
                 "name": "cut-a"},
                {"provider": "ant", "model": "claude-sim", "name": "cut-b", "priority": 1}]},
        },
        "storage": {"flush_interval_s": 0.05},
    }
    with GatewayProcess(config, env={"OAI_KEY": OPENAI_KEY, "ANT_KEY": ANTHROPIC_KEY}) as gw:
        yield gw


class Sent:
    """The bodies the SDK put on the wire."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, request: Any) -> None:  # the SDK's own httpx (httpx2) request
        self.bodies.append(request.read())


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def client(gateway: GatewayProcess, sent: Sent) -> Iterator[anthropic.Anthropic]:
    http = anthropic.DefaultHttpxClient(event_hooks={"request": [sent]}, timeout=15)
    yield anthropic.Anthropic(base_url=gateway.root_url, api_key="client-key", max_retries=0,
                              http_client=http)
    http.close()


def upstream(sim: SimServer) -> tuple[dict[str, Any], bytes]:
    stats = sim.stats()
    return stats["last_request"], str(stats["last_response_body"]).encode()


def assert_forwarded(client_body: bytes, upstream_body: str, model: str) -> None:
    """Every top-level field's bytes as the client sent them, in its order; only the model
    is the deployment's."""
    mine, theirs = _fields.decode(client_body), _fields.decode(upstream_body.encode())
    assert list(theirs) == list(mine)
    assert json.loads(bytes(theirs.pop("model"))) == model
    mine.pop("model")
    assert {k: bytes(v) for k, v in theirs.items()} == {k: bytes(v) for k, v in mine.items()}


def test_a_whole_message_is_forwarded_and_relayed_byte_for_byte(
    client: anthropic.Anthropic, sims: tuple[SimServer, SimServer], sent: Sent,
) -> None:
    raw = client.messages.with_raw_response.create(
        model="claude", max_tokens=300, system="Be brief.", messages=USER,
        metadata={"user_id": "u-1"}, extra_body=UNMODELED,
        extra_headers={"anthropic-beta": "mcp-client-2025-04-04"})
    request, answer = upstream(sims[1])
    assert_forwarded(sent.bodies[-1], request["body_bytes"], "claude-sim")
    assert request["headers"]["anthropic-beta"] == "mcp-client-2025-04-04"
    assert request["headers"]["x-api-key"] == ANTHROPIC_KEY
    assert raw.http_response.content == answer  # the upstream's bytes, exactly
    message = raw.parse()
    assert message.content[0].text == DEFAULT_TEXT  # type: ignore[union-attr]
    assert message.model == "claude-sim"  # the upstream's own label, as relayed


def test_a_stream_is_relayed_event_for_event(
    client: anthropic.Anthropic, sims: tuple[SimServer, SimServer], sent: Sent,
) -> None:
    with client.messages.with_streaming_response.create(
            model="claude", max_tokens=300, messages=USER, stream=True,
            extra_body=UNMODELED) as response:
        relayed = b"".join(response.iter_bytes())
    request, answer = upstream(sims[1])
    assert_forwarded(sent.bodies[-1], request["body_bytes"], "claude-sim")
    assert relayed == answer
    with client.messages.stream(model="claude", max_tokens=300, messages=USER,
                                extra_body=UNMODELED) as stream:
        assert "".join(stream.text_stream) == DEFAULT_TEXT
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


def test_the_clients_own_model_name_keeps_the_body_exact(
    client: anthropic.Anthropic, sims: tuple[SimServer, SimServer], sent: Sent,
) -> None:
    client.messages.create(model="ant/claude-sim", max_tokens=30, messages=USER)
    request, _ = upstream(sims[1])
    body = json.loads(sent.bodies[-1])
    assert json.loads(request["body_bytes"]) == {**body, "model": "claude-sim"}


def test_what_only_anthropic_carries_is_refused_elsewhere(
    client: anthropic.Anthropic, sims: tuple[SimServer, SimServer],
) -> None:
    before = sims[0].stats()["requests_total"]
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(model="gpt", max_tokens=30, messages=USER,
                               extra_body=UNMODELED)
    assert "'container' cannot be translated" in refused.value.message
    assert "gpt-4o-mini" in refused.value.message or "gpt" in refused.value.message
    assert sims[0].stats()["requests_total"] == before, "nothing reached the OpenAI upstream"
    # A group with both: the Anthropic deployment takes it, although it comes second.
    raw = client.messages.with_raw_response.create(model="mixed", max_tokens=30,
                                                   messages=USER, extra_body=UNMODELED)
    assert raw.headers["x-polyroute-deployment"] == "mixed-claude"
    # Without such fields the group's order holds: the OpenAI deployment answers, translated.
    plain = client.messages.with_raw_response.create(model="mixed", max_tokens=30,
                                                     messages=USER)
    assert plain.headers["x-polyroute-deployment"] == "mixed-gpt"
    assert plain.parse().content[0].text == DEFAULT_TEXT  # type: ignore[union-attr]


def test_failover_before_the_first_content_forwards_the_same_body(
    client: anthropic.Anthropic, sims: tuple[SimServer, SimServer], sent: Sent,
) -> None:
    with client.messages.with_streaming_response.create(
            model="flaky", max_tokens=300, messages=USER, stream=True,
            extra_body=UNMODELED) as response:
        relayed = b"".join(response.iter_bytes())
        assert response.headers["x-polyroute-deployment"] == "flaky-b"
    request, answer = upstream(sims[1])
    assert_forwarded(sent.bodies[-1], request["body_bytes"], "claude-b")
    assert relayed == answer


def ledger_row(gateway: GatewayProcess, client_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(gateway.db_path) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM ledger WHERE client_request_id = ?",
                             (client_id,)).fetchone()
        if row is not None or time.monotonic() > deadline:
            assert row is not None, "no ledger record"
            return dict(row)
        time.sleep(0.05)


@pytest.mark.parametrize("stream", [False, True])
def test_passed_through_answers_are_billed_from_the_upstreams_usage(
    client: anthropic.Anthropic, gateway: GatewayProcess, stream: bool,
) -> None:
    client_id = f"passthrough-bill-{stream}"
    if stream:
        with client.messages.stream(model="claude", max_tokens=300, messages=USER,
                                    extra_body=UNMODELED,
                                    extra_headers={"x-client-request-id": client_id}) as s:
            usage = s.get_final_message().usage
    else:
        usage = client.messages.create(model="claude", max_tokens=300, messages=USER,
                                       extra_body=UNMODELED,
                                       extra_headers={"x-client-request-id": client_id}).usage
    row = ledger_row(gateway, client_id)
    assert row["status"] == 200 and row["stream"] == int(stream)
    assert row["deployment"] and row["upstream_model"] == "claude-sim"
    assert row["prompt_tokens"] == usage.input_tokens > 0
    assert row["completion_tokens"] == usage.output_tokens > 0
    assert not row["usage_estimated"]


def test_a_stream_cut_mid_answer_is_finished_and_billed_once(
    client: anthropic.Anthropic, gateway: GatewayProcess,
) -> None:
    with client.messages.stream(model="cut", max_tokens=300, messages=USER,
                                extra_headers={"x-client-request-id": "passthrough-cut"},
                                ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == DEFAULT_TEXT, "the recovery finished the answer where the cut left it"
    assert final.stop_reason == "end_turn"
    assert "resumed by continuation on cut-b" in gateway.log()
    # Both attempts billed: the ledger and the client's one usage block hold their sum.
    row = ledger_row(gateway, "passthrough-cut")
    assert row["completion_tokens"] == final.usage.output_tokens > 0
    assert len(json.loads(row["attempts"])) == 2
    with httpx.stream("POST", f"{gateway.root_url}/v1/messages", timeout=15, json={
            "model": "cut", "max_tokens": 300, "messages": USER, "stream": True}) as response:
        names = [line[7:] for line in response.iter_lines() if line.startswith("event: ")]
    assert names.count("message_start") == 1 and names.count("message_stop") == 1
    assert names[-1] == "message_stop" and "error" not in names


def test_untranslatable_parts_still_count_in_the_estimate() -> None:
    """Admission reserves for what the canonical request left out, too."""
    text = "x" * 4000
    body = json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "search_result", "title": "t",
         "content": [{"type": "text", "text": text}]}]}]}).encode()
    request = anthropic_in.messages_request(body)
    assert request.native is not None
    assert request.native.untranslatable == "messages.0.content.0"
    assert "'search_result' blocks cannot be translated" in request.native.why
    assert estimate_input_tokens(request) >= len(text) // 4


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


START = _sse("message_start", {"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
    "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}})
THINKING = (_sse("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "thinking", "thinking": ""}})
            + _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
                "type": "thinking_delta", "thinking": "Hmm."}})
            + _sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
TEXT = (_sse("ping", {"type": "ping"})
        + _sse("content_block_start", {"type": "content_block_start", "index": 1,
                                       "content_block": {"type": "text", "text": ""}})
        + _sse("content_block_delta", {"type": "content_block_delta", "index": 1,
                                       "delta": {"type": "text_delta", "text": "Hel"}}))


async def _batches(events: bytes) -> list[list[ChatChunk]]:
    async def pieces() -> AsyncIterator[bytes]:
        yield events

    out = []
    with contextlib.suppress(UpstreamProtocolError):  # a cut stream: the batches before it
        async for batch in passthrough.stream(pieces(), "d", 0):
            out.append(batch)
    return out


def _relay(events: bytes) -> tuple[anthropic_out.StreamEncoder, bytes]:
    encoder = anthropic_out.StreamEncoder("m")
    return encoder, b"".join(encoder.feed(batch) for batch in asyncio.run(_batches(events)))


def _parsed(sent: bytes) -> list[tuple[str, dict[str, Any]]]:
    return [(e.split(b"\n")[0][7:].decode(), json.loads(e.split(b"\n")[1][6:]))
            for e in sent.split(b"\n\n") if e]


def test_a_passed_through_stream_is_its_events_and_the_translated_rest_continues_it() -> None:
    whole = START + THINKING + TEXT + _sse("message_delta", {
        "type": "message_delta", "delta": {"stop_reason": "end_turn"},
        "usage": {"output_tokens": 9}}) + _sse("message_stop", {"type": "message_stop"})
    encoder, relayed = _relay(whole)
    assert relayed == whole and encoder.finish() == b""

    # Cut after "Hel": a recovery's translated chunks continue block 1, then close it.
    encoder, relayed = _relay(START + THINKING + TEXT)
    assert relayed == START + THINKING + TEXT
    rest = encoder.feed([ChatChunk(choices=[ChunkChoice(0, Delta(content="lo"))])])
    rest += encoder.feed([ChatChunk(choices=[ChunkChoice(0, Delta(), "stop")])])
    events = _parsed(rest + encoder.finish())
    assert [name for name, _ in events] == ["content_block_delta", "content_block_stop",
                                            "message_delta", "message_stop"]
    assert events[0][1]["index"] == 1 and events[0][1]["delta"]["text"] == "lo"
    assert events[1][1]["index"] == 1

    # Or no attempt can finish it: the open block is closed before the error event.
    encoder, _ = _relay(START + THINKING + TEXT)
    events = _parsed(encoder.fail(StreamInterrupted("cut")))
    assert [name for name, _ in events] == ["content_block_stop", "error"]
    assert events[0][1]["index"] == 1
