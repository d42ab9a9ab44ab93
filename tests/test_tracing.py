"""OpenTelemetry traces exported over OTLP/HTTP to a real receiver on loopback: a server span
per request, a client span per upstream attempt (failovers, hedges and stream resumes
visible), GenAI attributes, the client's traceparent joined and the attempt's sent upstream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from polyroute.model.record import Attempt, RequestRecord
from polyroute.model.upstream import Deployment, Endpoint
from polyroute.observability.otlp import Attr, Encoder, span_field
from polyroute.observability.tracing import BATCH, Tracer, parse_traceparent
from tests.conftest import SIM_KEY, gateway_config, sim_provider
from tests.support.gateway import GatewayProcess
from tests.support.otlp import OtlpReceiver, ReceivedSpan, value
from tests.support.sim import SimServer

USER = [{"role": "user", "content": "Say hello."}]
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SERVER, CLIENT = 2, 3  # the protobuf's SpanKind values


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def paced() -> Iterator[SimServer]:
    with SimServer(api_key=SIM_KEY, tokens_per_second=100) as server:
        yield server


@pytest.fixture(scope="module")
def traced(sim: SimServer, paced: SimServer, receiver: OtlpReceiver) -> Iterator[GatewayProcess]:
    config: dict[str, Any] = gateway_config(sim, tracing={
        "enabled": True, "endpoint": receiver.url, "export_interval_s": 0.05,
        "service_name": "polyroute-test"})
    config["providers"]["paced"] = sim_provider(paced)
    groups = config["model_groups"]
    groups["hedged"] = {"routing": "priority", "resilience": {
        "hedge": {"enabled": True, "delay_s": 0.1}}, "deployments": [
        {"provider": "sim", "model": "slow@slow_first_token:delay_ms=1500", "name": "slow"},
        {"provider": "sim", "model": "quick", "name": "quick", "priority": 1}]}
    groups["cut"] = {"routing": "priority", "deployments": [
        {"provider": "paced", "model": "cut@stream_cut:after_chunks=3", "name": "cut"},
        {"provider": "paced", "model": "whole", "name": "whole", "priority": 1}]}
    with GatewayProcess(config, env={"SIM_KEY": SIM_KEY}) as gw:
        yield gw


def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


def split(spans: list[ReceivedSpan]) -> tuple[ReceivedSpan, list[ReceivedSpan]]:
    (root,) = [s for s in spans if s.kind == SERVER]
    children = sorted((s for s in spans if s.kind == CLIENT), key=lambda s: s.start_ns)
    assert all(c.parent_id == root.span_id for c in children)
    return root, children


def test_failover_is_one_trace_joined_to_the_clients(
        traced: GatewayProcess, receiver: OtlpReceiver, sim: SimServer) -> None:
    raw = client(traced).chat.completions.with_raw_response.create(
        model="failover", messages=USER,
        extra_headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
    usage = raw.parse().usage
    assert usage is not None
    request_id = raw.headers["x-request-id"]
    root, attempts = split(receiver.trace("polyroute.request_id", request_id, 3))

    assert root.trace_id == CLIENT_TRACE and root.parent_id == CLIENT_SPAN
    assert root.name == "chat failover"
    assert root.resource["service.name"] == "polyroute-test"
    a = root.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "failover"
    assert a["gen_ai.response.model"] == "gpt-4o-mini" and a["gen_ai.provider.name"] == "sim"
    assert a["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert a["polyroute.deployment"] == "backup" and a["polyroute.attempts"] == 2
    assert a["http.response.status_code"] == 200 and not root.error
    assert root.start_ns < root.end_ns

    first, second = attempts
    assert first.attributes["polyroute.deployment"] == "primary"
    assert first.attributes["polyroute.attempt.kind"] == "first"
    assert first.attributes["polyroute.attempt.outcome"] == "upstream_unavailable"
    assert first.attributes["error.type"] == "upstream_unavailable" and first.error
    assert second.attributes["polyroute.deployment"] == "backup"
    assert second.attributes["polyroute.attempt.kind"] == "failover"
    assert second.attributes["polyroute.attempt.outcome"] == "ok" and not second.error
    assert second.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert root.start_ns <= first.start_ns <= second.start_ns <= root.end_ns

    # The upstream that answered was sent the traceparent of its own attempt's span.
    sent = sim.stats()["last_request"]["headers"]["traceparent"]
    assert sent == f"00-{CLIENT_TRACE}-{second.span_id}-01"


def test_a_request_without_traceparent_starts_a_trace_and_an_error_is_marked(
        traced: GatewayProcess, receiver: OtlpReceiver) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client(traced).chat.completions.create(model="all-down", messages=USER)
    request_id = caught.value.response.headers["x-request-id"]
    spans = receiver.trace("polyroute.request_id", request_id, 2)
    root, attempts = split(spans)
    assert root.parent_id == "" and root.trace_id != CLIENT_TRACE
    assert root.error and root.attributes["error.type"] == "all_deployments_failed"
    assert [c.attributes["polyroute.deployment"] for c in attempts][:2] == ["first", "second"]


def test_hedge_and_stream_resume_are_visible(
        traced: GatewayProcess, receiver: OtlpReceiver) -> None:
    raw = client(traced).chat.completions.with_raw_response.create(model="hedged",
                                                                   messages=USER)
    root, attempts = split(receiver.trace("polyroute.request_id", raw.headers["x-request-id"],
                                          3))
    kinds = {c.attributes["polyroute.deployment"]: c.attributes["polyroute.attempt.kind"]
             for c in attempts}
    assert kinds == {"slow": "first", "quick": "hedge"}
    assert root.attributes["polyroute.deployment"] == "quick"

    with client(traced).chat.completions.with_streaming_response.create(
            model="cut", messages=USER, stream=True) as response:
        request_id = response.headers["x-request-id"]
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert text
    root, attempts = split(receiver.trace("polyroute.request_id", request_id, 3))
    assert root.attributes["polyroute.stream"] is True
    assert root.attributes["polyroute.ttft_s"] > 0
    assert [c.attributes["polyroute.attempt.kind"] for c in attempts] == ["first", "resume"]
    assert [c.attributes["polyroute.deployment"] for c in attempts] == ["cut", "whole"]


def test_tracing_off_sends_no_traceparent(gateway: GatewayProcess, sim: SimServer) -> None:
    client(gateway).chat.completions.create(
        model="chat", messages=USER,
        extra_headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
    assert "traceparent" not in sim.stats()["last_request"]["headers"]


@pytest.mark.parametrize("header", [
    None, "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # too short
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is invalid
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
    "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  # not hex
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # 00 has 4 fields
])
def test_a_malformed_traceparent_starts_a_new_trace(header: str | None) -> None:
    assert parse_traceparent(header) is None


def test_traceparent_versions_and_flags() -> None:
    assert parse_traceparent(f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01") == (
        CLIENT_TRACE, CLIENT_SPAN, True)
    assert parse_traceparent(f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00")[2] is False  # type: ignore[index]
    # A later version may add fields: read as 00.
    assert parse_traceparent(f"01-{CLIENT_TRACE}-{CLIENT_SPAN}-03-what-ever") == (
        CLIENT_TRACE, CLIENT_SPAN, True)


def test_the_encoder_writes_what_opentelemetry_proto_reads() -> None:
    encoder = Encoder()
    attrs = {"s": "é text", "t": True, "f": False, "i": 7, "big": 2**40, "neg": -3,
             "d": 0.125}
    body = encoder.export_request(
        {"service.name": "x"}, ("polyroute", "1.2"),
        [span_field(encoder.span(bytes(range(16)), bytes(range(8)), None, "chat m", 2, 5, 9,
                                 attrs, True))] * 2)
    request = ExportTraceServiceRequest.FromString(body)
    (rs,) = request.resource_spans
    assert rs.scope_spans[0].scope.name == "polyroute"
    assert rs.scope_spans[0].scope.version == "1.2"
    first, second = rs.scope_spans[0].spans
    assert first == second  # the (key, value) cache gives the same bytes
    assert {a.key: value(a.value) for a in first.attributes} == attrs
    assert first.trace_id == bytes(range(16)) and first.parent_span_id == b""
    assert (first.start_time_unix_nano, first.end_time_unix_nano) == (5, 9)
    assert first.status.code == first.status.STATUS_CODE_ERROR


@pytest.mark.parametrize("number", [0, 1, 127, 128, 300, 16383, 16384, 2**40, -3])
def test_per_span_attributes_from_precomputed_prefixes_read_back(number: int) -> None:
    """``Attr``'s prefixes (small integers as whole precomputed fields, string lengths
    either side of its table) decode with opentelemetry-proto to the values written."""
    encoder, named = Encoder(), Attr("gen_ai.usage.input_tokens")
    texts = {"short": "r", "119": "x" * 119, "120": "é" * 60, "long": "y" * 300}
    for label, text in texts.items():
        attrs = (named.of_int(number) + named.of_float(number / 7)
                 + Attr(f"s.{label}").of_str(text))
        span = encoder.span(bytes(range(16)), bytes(range(8)), None, "s", 2, 1, 2, attrs, False)
        body = encoder.export_request({}, ("p", "1"), [span_field(span), span_field(span)])
        (spans,) = [s.spans for s in ExportTraceServiceRequest.FromString(body)
                    .resource_spans[0].scope_spans]
        assert len(spans) == 2
        got = [(a.key, value(a.value)) for a in spans[0].attributes]
        assert got == [("gen_ai.usage.input_tokens", number),
                       ("gen_ai.usage.input_tokens", number / 7), (f"s.{label}", text)]


def test_a_span_longer_than_the_field_table_is_framed_right() -> None:
    encoder = Encoder()
    span = encoder.span(bytes(range(16)), bytes(range(8)), None, "n" * 5000, 3, 1, 2, b"",
                        False)
    body = encoder.export_request({}, ("p", "1"), [span_field(span)])
    (got,) = ExportTraceServiceRequest.FromString(body).resource_spans[0].scope_spans[0].spans
    assert got.name == "n" * 5000 and got.kind == got.SPAN_KIND_CLIENT


def _deployment() -> Deployment:
    endpoint = Endpoint(vendor="openai", protocol="openai", base_url="http://127.0.0.1:1/v1",
                        headers={})
    return Deployment(name="d1", vendor="openai", model="m", endpoint=endpoint)


def _traced(tracer: Tracer, i: int, traceparent: str | None = None) -> str | None:
    record = RequestRecord(f"r{i}", time.time(), "chat", "chat", traceparent=traceparent)
    tracer.begin(record)
    span = tracer.attempt(record, _deployment(), "first")
    sent = tracer.outgoing()
    note = Attempt("d1", "openai", 0.01)
    record.attempts.append(note)
    span.end(note)
    assert tracer.outgoing() is None  # the attempt is over: nothing more goes upstream
    tracer.observe(record)
    return sent


def test_unsampled_requests_export_nothing_but_still_propagate() -> None:
    tracer = Tracer(sample_ratio=0.0)
    sent = _traced(tracer, 1)
    assert sent is not None and sent.endswith("-00")
    # The client's sampled flag wins over the ratio.
    sent = _traced(tracer, 2, f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")
    assert sent is not None and sent.startswith(f"00-{CLIENT_TRACE}-") and sent.endswith("-01")
    (trace,) = tracer.take()
    assert trace.record.request_id == "r2"


def test_a_full_export_queue_drops_and_counts() -> None:
    tracer = Tracer(max_queue=2)
    for i in range(5):
        _traced(tracer, i)
    assert len(tracer.take()) == 2
    assert tracer.dropped == 3 * 2  # a request span and an attempt span each


# -- export rounds: every interval or at a full batch, what waits then, nothing lost --------

async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - a receiver thread's state, polled
            await asyncio.sleep(0.01)


async def test_spans_are_exported_within_the_interval_in_one_post() -> None:
    with OtlpReceiver() as receiver:
        tracer = Tracer(endpoint=receiver.url, export_interval_s=0.3)
        tracer.start()
        try:
            started = time.monotonic()
            for i in range(3):
                _traced(tracer, i)
            # (The receiver holds the spans before the tracer has read its answer and counted.)
            await _until(lambda: len(receiver.spans) == 6 and tracer.exported == 6)
            assert time.monotonic() - started < 0.3 + 1.5  # (slack for a busy machine)
            assert len(receiver.content_types) == 1 and tracer.exported == 6
        finally:
            await tracer.aclose()


async def test_a_full_batch_goes_at_once_and_the_rest_waits_for_the_interval() -> None:
    with OtlpReceiver() as receiver:
        tracer = Tracer(endpoint=receiver.url, export_interval_s=60)
        tracer.start()
        try:
            for i in range(BATCH):
                _traced(tracer, i)
            await _until(lambda: len(receiver.spans) == 2 * BATCH)
            for i in range(10):
                _traced(tracer, BATCH + i)
            await asyncio.sleep(0.5)
            assert len(receiver.content_types) == 1  # the ten wait for the interval ...
        finally:
            await tracer.aclose()  # ... or the shutdown
        assert len(receiver.spans) == 2 * (BATCH + 10) and len(receiver.content_types) == 2
        assert tracer.exported == 2 * (BATCH + 10) and tracer.failed == tracer.dropped == 0


async def test_a_busy_gateway_posts_a_few_batches_not_a_trickle() -> None:
    """Requests end all the time: each round sends what waited when it began, and what ends
    during its post waits for the next interval (not a new post as soon as this one is
    answered)."""
    with OtlpReceiver(delay_s=0.05) as receiver:
        tracer = Tracer(endpoint=receiver.url, export_interval_s=0.25)
        tracer.start()
        traced = 0
        try:
            until = time.monotonic() + 1.5
            while time.monotonic() < until:
                _traced(tracer, traced)
                traced += 1
                await asyncio.sleep(0.002)
        finally:
            await tracer.aclose()
        assert traced > 100
        # 1.5 s / 0.25 s of interval (each round then waits 0.05 s for its answer) ≈ 5, and
        # the shutdown's; before, the exporter posted again as soon as a post was answered.
        assert len(receiver.content_types) <= 8
        assert len(receiver.spans) == tracer.exported == 2 * traced


async def test_shutdown_during_an_export_loses_nothing() -> None:
    with OtlpReceiver(delay_s=0.5) as receiver:
        tracer = Tracer(endpoint=receiver.url, export_interval_s=0.05)
        tracer.start()
        try:
            for i in range(5):
                _traced(tracer, i)
            await _until(lambda: tracer.waiting == 0)  # a round took them: its post is on
            for i in range(5, 8):  # these end while the first round's post is unanswered
                _traced(tracer, i)
        finally:
            await tracer.aclose()
        assert tracer.exported == len(receiver.spans) == 16 and tracer.failed == 0
        assert len(receiver.content_types) == 2

