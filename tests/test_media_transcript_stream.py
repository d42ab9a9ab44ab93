"""A streamed transcription (``stream: true``, gpt-4o-transcribe) relayed event by event: the
simulator paces its ``transcript.text.delta`` events as OpenAI does and the ``openai`` SDK
reads them with its own types; through the gateway, the first event reaches the client
before the upstream has sent the last, the ledger bills the ``transcript.text.done`` event's
usage, a stream cut midway or stalled past the stall deadline ends with an error event the SDK
raises on, and a deployment that fails before its first event is replaced."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.audio import TranscriptionTextDeltaEvent, TranscriptionTextDoneEvent

from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, new_key
from tests.support.sim import SimServer
from tests.test_media_gateway import ledger_row
from tests.test_media_sim import strict, wav

KEY = "transcript-stream-key-7d21"
PAUSE_S = 0.1
"""Between two events of the simulator (10 events a second)."""
STALL_S = 0.6
"""The gateway's longest wait between two events of the group whose upstream stalls…"""
STALL_HOLD_S = 5.0
"""…for this long after its second event, then hangs up."""


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=KEY, tokens_per_second=1 / PAUSE_S) as server:
        yield server


@pytest.fixture(scope="module")
def gw(sim: SimServer) -> Iterator[GatewayProcess]:
    def dep(model: str, **extra: Any) -> dict[str, Any]:
        return {"provider": "sim", "model": model, **extra}
    config = {
        "providers": {"sim": {"base_url": sim.base_url, "api_key": "${SIM_KEY}"}},
        "model_groups": {
            "transcribe": {"deployments": [dep("gpt-4o-transcribe")]},
            "transcribe-cut": {"deployments": [
                dep("gpt-4o-transcribe@stream_cut:after_chunks=2")]},
            "transcribe-stall": {
                "deployments": [dep(f"gpt-4o-transcribe@stream_stall:after_chunks=2,"
                                    f"hold_s={STALL_HOLD_S}")],
                "resilience": {"timeouts": {"stall_s": STALL_S}}},
            "transcribe-failover": {"routing": "priority", "deployments": [
                dep("gpt-4o-transcribe@unavailable", name="down"),
                dep("gpt-4o-transcribe", name="up", priority=1)]},
        },
        "auth": {"master_key": "${PR_MASTER}"},
        "storage": {"flush_interval_s": 0.05},
    }
    with GatewayProcess(config, env={"SIM_KEY": KEY, "PR_MASTER": MASTER_KEY}) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=new_key(gw), max_retries=0)


def test_the_simulator_streams_events_the_sdk_reads(sim: SimServer) -> None:
    direct = openai.OpenAI(base_url=sim.base_url, api_key=KEY, max_retries=0)
    raw = direct.audio.transcriptions.with_raw_response.create(
        model="gpt-4o-transcribe", file=("talk.wav", wav(3.0), "audio/wav"), stream=True)
    assert raw.headers["content-type"].startswith("text/event-stream")
    *deltas, done = list(raw.parse())
    assert deltas and all(isinstance(e, TranscriptionTextDeltaEvent) for e in deltas)
    assert isinstance(done, TranscriptionTextDoneEvent)
    assert "".join(e.delta for e in deltas) == done.text  # type: ignore[union-attr]
    assert done.text.startswith("Simulated transcript of talk.wav")
    assert done.usage is not None and done.usage.input_tokens == 30  # 10 a second
    # Each event's bytes, strictly: no field the SDK's types do not know.
    body = httpx.post(f"{sim.base_url}/audio/transcriptions",
                      headers={"Authorization": f"Bearer {KEY}"},
                      data={"model": "gpt-4o-transcribe", "stream": "true"},
                      files={"file": ("a.wav", wav(1.0), "audio/wav")}, timeout=10).content
    events = [line[6:] for line in body.split(b"\n\n") if line.startswith(b"data: ")]
    assert len(events) > 2
    for data in events[:-1]:
        strict(TranscriptionTextDeltaEvent, data)
    strict(TranscriptionTextDoneEvent, events[-1])


def test_events_reach_the_client_as_the_upstream_sends_them(client: openai.OpenAI,
                                                            gw: GatewayProcess,
                                                            sim: SimServer) -> None:
    before = sim.stats()["streams_completed"]
    started = time.monotonic()
    raw = client.audio.transcriptions.with_raw_response.create(
        model="transcribe", file=("talk.wav", wav(2.0), "audio/wav"), stream=True)
    events = iter(raw.parse())
    first = next(events)
    first_at = time.monotonic() - started
    # The upstream has not sent its last event yet: the gateway did not wait for it.
    assert sim.stats()["streams_completed"] == before
    assert isinstance(first, TranscriptionTextDeltaEvent)
    rest = list(events)
    assert time.monotonic() - started - first_at >= (len(rest) - 1) * PAUSE_S * 0.8
    done = rest[-1]
    assert isinstance(done, TranscriptionTextDoneEvent) and done.usage is not None
    assert sim.stats()["streams_completed"] == before + 1
    row = ledger_row(gw, raw.headers["x-request-id"])
    assert (row["endpoint"], row["stream"], row["status"]) == ("audio.transcriptions", 1, 200)
    usage = done.usage
    assert (row["prompt_tokens"], row["completion_tokens"]) == (usage.input_tokens,
                                                                 usage.output_tokens)
    assert row["cost_usd"] == pytest.approx((usage.input_tokens * 6
                                             + usage.output_tokens * 10) / 1e6)


def test_a_cut_stream_ends_with_an_error_the_sdk_raises(client: openai.OpenAI,
                                                        gw: GatewayProcess) -> None:
    raw = client.audio.transcriptions.with_raw_response.create(
        model="transcribe-cut", file=("talk.wav", wav(2.0), "audio/wav"), stream=True)
    got = []
    with pytest.raises(openai.APIError) as caught:
        for event in raw.parse():
            got.append(event)
    assert len(got) == 2 and all(isinstance(e, TranscriptionTextDeltaEvent) for e in got)
    assert "upstream" in caught.value.message
    row = ledger_row(gw, raw.headers["x-request-id"])
    assert row["error_class"] is not None and row["status"] != 200


def test_a_stall_mid_stream_ends_with_an_error_the_sdk_raises(client: openai.OpenAI,
                                                              gw: GatewayProcess) -> None:
    started = time.monotonic()
    raw = client.audio.transcriptions.with_raw_response.create(
        model="transcribe-stall", file=("talk.wav", wav(2.0), "audio/wav"), stream=True)
    got = []
    with pytest.raises(openai.APIError) as caught:
        for event in raw.parse():
            got.append(event)
    # The gateway gave up after its stall deadline, not when the upstream hung up.
    assert time.monotonic() - started < STALL_HOLD_S - 1
    assert len(got) == 2 and all(isinstance(e, TranscriptionTextDeltaEvent) for e in got)
    assert f"stalled for {STALL_S:g} s" in caught.value.message
    row = ledger_row(gw, raw.headers["x-request-id"])
    assert (row["error_class"], row["status"]) == ("upstream_timeout", 504)


def test_failover_before_the_first_event(client: openai.OpenAI, gw: GatewayProcess) -> None:
    raw = client.audio.transcriptions.with_raw_response.create(
        model="transcribe-failover", file=("talk.wav", wav(1.0), "audio/wav"), stream=True)
    assert raw.headers["x-polyroute-deployment"] == "up"
    assert raw.headers["x-polyroute-attempts"].startswith("down:")
    assert isinstance(list(raw.parse())[-1], TranscriptionTextDoneEvent)
    assert ledger_row(gw, raw.headers["x-request-id"])["deployment"] == "up"
