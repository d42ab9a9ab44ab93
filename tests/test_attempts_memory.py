"""The engine's attempt loop, failover and hedging over the real adapters and the in-memory
transport: scripted upstreams of every protocol, no sockets, milliseconds per test."""

from __future__ import annotations

import time

import pytest

from polyroute.adapters.client import UpstreamClient
from polyroute.adapters.memory_transport import MemoryTransport, Scripted, by_url
from polyroute.adapters.registry import AdapterRegistry
from polyroute.config import GatewayConfig
from polyroute.config.compiled import (
    Hedge,
    ModelGroup,
    Resilience,
    ServerSettings,
    StorageSettings,
)
from polyroute.engine.circuit import Breakers
from polyroute.engine.gateway import Gateway
from polyroute.engine.router import Router
from polyroute.errors import AllDeploymentsFailed, GatewayError
from polyroute.model.chat import ChatChunk, ChatRequest, Message
from polyroute.model.record import RequestRecord
from tests.support.wire import KEY, WIRES, Wire

PROTOCOLS = sorted(WIRES)


def request() -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content="Say hello.")], model="g",
                       max_tokens=64)


def record(stream: bool = False) -> RequestRecord:
    return RequestRecord(request_id="r-1", started_at=time.time(), endpoint="chat",
                         requested_model="g", stream=stream)


def gateway(
    primary: Wire, backup: Wire, transport: MemoryTransport, hedge: Hedge | None = None
) -> Gateway:
    """Group 'g': ``primary`` first, ``backup`` after it; one upstream model name, so a
    failure moves on at once."""
    deployments = (primary.deployment("primary"), backup.deployment("backup", priority=1))
    group = ModelGroup("g", "priority", deployments,
                       resilience=Resilience(hedge=hedge or Hedge()))
    config = GatewayConfig("test", ServerSettings(), StorageSettings("unused"), {"g": group}, {})
    breakers = Breakers(time.monotonic)
    breakers.track(d.upstream for d in deployments)
    return Gateway(Router(config), AdapterRegistry(UpstreamClient(transport, secrets=[KEY])),
                   [], breakers)


def pair(first: str) -> tuple[Wire, Wire]:
    """Two different protocols: failover crosses protocols as easily as deployments."""
    second = PROTOCOLS[(PROTOCOLS.index(first) + 1) % len(PROTOCOLS)]
    return WIRES[first], WIRES[second]


@pytest.mark.parametrize("first", PROTOCOLS)
async def test_rate_limited_primary_fails_over_to_the_backup(first: str) -> None:
    primary, backup = pair(first)
    transport = MemoryTransport(by_url({
        primary.base_url: primary.rate_limited("busy"),
        backup.base_url: Scripted.body(backup.answer("from the backup")),
    }))
    rec = record()
    response = await gateway(primary, backup, transport).chat(request(), rec)
    assert response.choices[0].message.content == "from the backup"
    assert [str(s.url).startswith(w.base_url) for s, w in zip(
        transport.sent, (primary, backup), strict=True)] == [True, True]
    assert [(a.deployment, a.error_class) for a in rec.attempts] == [
        ("primary", "upstream_rate_limited"), ("backup", None)]
    assert rec.deployment == "backup"


@pytest.mark.parametrize("first", PROTOCOLS)
async def test_stream_broken_before_its_first_content_fails_over_invisibly(first: str) -> None:
    primary, backup = pair(first)
    transport = MemoryTransport(by_url({
        primary.base_url: Scripted(chunks=(primary.stream_start(),), break_after=1),
        backup.base_url: Scripted(chunks=(backup.stream("one", " two"),)),
    }))
    rec = record(stream=True)
    live = await gateway(primary, backup, transport).stream_chat(request(), rec)
    chunks: list[ChatChunk] = []
    async for batch in live:
        chunks += batch
    await live.aclose()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two"
    assert [(a.deployment, a.error_class) for a in rec.attempts] == [
        ("primary", "upstream_connect_error"), ("backup", None)]
    assert transport.open == 0


async def test_hedge_wins_over_a_slow_primary_which_is_cancelled() -> None:
    primary, backup = WIRES["openai"], WIRES["anthropic"]
    transport = MemoryTransport(by_url({
        primary.base_url: Scripted(chunks=(primary.answer("slow"),), delay_s=2.0),
        backup.base_url: Scripted.body(backup.answer("hedged")),
    }))
    rec = record()
    started = time.perf_counter()
    response = await gateway(primary, backup, transport, Hedge(enabled=True, delay_s=0.02,
                                                               min_delay_s=0.0)).chat(
        request(), rec)
    elapsed = time.perf_counter() - started
    assert response.choices[0].message.content == "hedged"
    assert elapsed < 1.0, "the hedge did not answer before the slow primary"
    assert rec.deployment == "backup"
    assert [str(s.url).split("/")[2] for s in transport.sent] == [
        "openai.test", "anthropic.test"]
    assert transport.open == 0, "the losing attempt was not released"


async def test_hedge_not_sent_when_the_primary_answers_in_time() -> None:
    primary, backup = WIRES["gemini"], WIRES["bedrock"]
    transport = MemoryTransport(by_url({
        primary.base_url: Scripted.body(primary.answer("quick")),
        backup.base_url: Scripted.body(backup.answer("never")),
    }))
    response = await gateway(primary, backup, transport, Hedge(enabled=True, delay_s=0.5,
                                                               min_delay_s=0.0)).chat(
        request(), record())
    assert response.choices[0].message.content == "quick"
    assert len(transport.sent) == 1


async def test_every_deployment_failing_names_the_last_error() -> None:
    primary, backup = WIRES["bedrock"], WIRES["azure"]
    transport = MemoryTransport(by_url({
        primary.base_url: Scripted(fail="connect"),
        backup.base_url: backup.auth_failed(f"bad key {KEY}"),
    }))
    rec = record()
    with pytest.raises(GatewayError) as caught:
        await gateway(primary, backup, transport).chat(request(), rec)
    assert isinstance(caught.value, AllDeploymentsFailed) or caught.value.status == 502
    assert KEY not in str(caught.value)
    tried = [a.deployment for a in rec.attempts]
    assert tried[0] == "primary" and "backup" in tried
