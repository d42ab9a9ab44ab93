"""The simulator's Files and Batch APIs, as the official openai SDK sees them: typed objects,
a batch that completes after its delay, and an output file in OpenAI's format."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import anthropic
import openai
import pytest
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse
from openai.types import Batch, FileObject
from openai.types.chat import ChatCompletion

from tests.conftest import SIM_KEY
from tests.support.sim import SimServer


def batch_file(lines: int, model: str = "gpt-4o-mini", max_tokens: int = 5) -> bytes:
    return b"".join(json.dumps({
        "custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": model, "max_tokens": max_tokens,
                 "messages": [{"role": "user", "content": f"Question {i}?"}]},
    }).encode() + b"\n" for i in range(lines))


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=SIM_KEY, batch_delay_ms=100) as server:
        yield server


def wait_for(client: openai.OpenAI, batch_id: str) -> Batch:
    deadline = time.monotonic() + 10
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "cancelled", "expired") \
                or time.monotonic() > deadline:
            return batch
        time.sleep(0.05)


@pytest.mark.parametrize("azure", [False, True])
def test_a_batch_runs_and_its_output_is_openais_format(sim: SimServer, azure: bool) -> None:
    client: openai.OpenAI
    if azure:
        client = openai.AzureOpenAI(azure_endpoint=sim.root_url, api_key=SIM_KEY,
                                    api_version="2024-10-21", max_retries=0)
    else:
        client = openai.OpenAI(base_url=sim.base_url, api_key=SIM_KEY, max_retries=0)
    uploaded = client.files.create(file=("in.jsonl", batch_file(3)), purpose="batch")
    assert isinstance(uploaded, FileObject) and uploaded.purpose == "batch"
    assert client.files.retrieve(uploaded.id).bytes == len(batch_file(3))
    created = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                    completion_window="24h", metadata={"run": "1"})
    assert isinstance(created, Batch) and created.status == "in_progress"
    assert created.request_counts is not None and created.request_counts.total == 3
    done = wait_for(client, created.id)
    assert done.status == "completed" and done.output_file_id and done.error_file_id is None
    assert done.request_counts is not None and done.request_counts.completed == 3
    lines = [json.loads(line) for line in
             client.files.content(done.output_file_id).content.splitlines()]
    assert sorted(line["custom_id"] for line in lines) == ["req-0", "req-1", "req-2"]
    completions = [ChatCompletion.model_validate(line["response"]["body"]) for line in lines]
    assert all(line["response"]["status_code"] == 200 and line["error"] is None
               for line in lines)
    assert all(c.usage is not None and c.usage.completion_tokens == 5 for c in completions)
    assert done.usage is not None and done.usage.output_tokens == 15
    assert done.usage.input_tokens == sum(c.usage.prompt_tokens for c in completions if c.usage)
    assert created.id in [b.id for b in client.batches.list()]
    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_a_cancelled_batch_ends_cancelled(sim: SimServer) -> None:
    client = openai.OpenAI(base_url=sim.base_url, api_key=SIM_KEY, max_retries=0)
    uploaded = client.files.create(file=("in.jsonl", batch_file(1)), purpose="batch")
    created = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                    completion_window="24h")
    assert client.batches.cancel(created.id).status == "cancelling"
    assert client.batches.retrieve(created.id).status == "cancelled"
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_missing")


def test_message_batches_as_the_anthropic_sdk_sees_them(sim: SimServer) -> None:
    client = anthropic.Anthropic(base_url=sim.root_url, api_key=SIM_KEY, max_retries=0)
    created = client.messages.batches.create(requests=[
        {"custom_id": f"r{i}", "params": {"model": "claude-sim", "max_tokens": 6,
                                          "messages": [{"role": "user", "content": "Hi?"}]}}
        for i in range(2)] + [{"custom_id": "bad", "params": {  # type: ignore[list-item]
            "model": "claude-sim", "max_tokens": 6, "messages": []}}])
    assert isinstance(created, MessageBatch) and created.processing_status == "in_progress"
    assert created.request_counts.processing == 3
    deadline = time.monotonic() + 10
    batch = created
    while batch.processing_status != "ended" and time.monotonic() < deadline:
        time.sleep(0.05)
        batch = client.messages.batches.retrieve(created.id)
    assert batch.processing_status == "ended" and batch.results_url
    assert batch.request_counts.succeeded == 2 and batch.request_counts.errored == 1
    results = list(client.messages.batches.results(created.id))
    assert all(isinstance(r, MessageBatchIndividualResponse) for r in results)
    kinds = {r.custom_id: r.result.type for r in results}
    assert kinds == {"r0": "succeeded", "r1": "succeeded", "bad": "errored"}
    ok = [r.result.message for r in results if r.result.type == "succeeded"]
    assert all(m.usage.output_tokens == 6 and m.stop_reason == "max_tokens" for m in ok)
    assert created.id in [b.id for b in client.messages.batches.list()]
    assert client.messages.batches.delete(created.id).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(created.id)


def test_faulted_lines_go_to_the_error_file(sim: SimServer) -> None:
    client = openai.OpenAI(base_url=sim.base_url, api_key=SIM_KEY, max_retries=0)
    content = batch_file(1) + batch_file(1, model="gpt-4o-mini@rate_limit").replace(
        b"req-0", b"req-limited")
    uploaded = client.files.create(file=("in.jsonl", content), purpose="batch")
    done = wait_for(client, client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h").id)
    assert done.status == "completed" and done.output_file_id and done.error_file_id
    assert done.request_counts is not None and done.request_counts.failed == 1
    [failed] = [json.loads(line) for line in
                client.files.content(done.error_file_id).content.splitlines()]
    assert failed["custom_id"] == "req-limited"
    assert failed["response"]["status_code"] == 429
    assert failed["response"]["body"]["error"]["code"] == "rate_limit_exceeded"
