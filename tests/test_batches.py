"""Files and batches through the gateway, with the official openai SDK: a key never sees
another's files or batches (404), a batch reserves its worst case at the batch price when it
is created and is settled in the ledger at its real cost when it ends; on SQLite and on
PostgreSQL, to an OpenAI and an Azure OpenAI deployment."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from openai.types import Batch, FileObject
from openai.types.chat import ChatCompletion

from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, admin, new_key, ok
from tests.support.postgres import scratch_database
from tests.support.sim import SimServer

PRICE = {"input_per_1m": 100.0, "output_per_1m": 300.0}
BATCH = 0.5  # the catalog's batch fraction


def lines(n: int, model: str = "chat", max_tokens: int = 7) -> list[dict[str, Any]]:
    return [{"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": model, "max_tokens": max_tokens,
                      "messages": [{"role": "user", "content": f"Question number {i}?"}]}}
            for i in range(n)]


def jsonl(items: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(item, separators=(",", ":")).encode() + b"\n" for item in items)


def worst_case_usd(items: list[dict[str, Any]]) -> float:
    """What the gateway documents: a token per four bytes of each compact body, plus one,
    and each line's max_tokens, at the batch price."""
    prompt = sum(len(json.dumps(i["body"], separators=(",", ":"))) // 4 + 1 for i in items)
    output = sum(i["body"]["max_tokens"] for i in items)
    return (prompt * PRICE["input_per_1m"] + output * PRICE["output_per_1m"]) / 1e6 * BATCH


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=SIM_KEY, batch_delay_ms=100) as server:
        yield server


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(request: pytest.FixtureRequest, sim: SimServer) -> Iterator[GatewayProcess]:
    storage: dict[str, Any] = {"flush_interval_s": 0.05, "batch_poll_s": 0.2}
    with scratch_database("batches") if request.param == "postgres" else \
            _no_database() as url:
        if url is not None:
            storage["postgres_url"] = url
        config = {
            "providers": {
                "sim": {"base_url": sim.base_url, "api_key": "${SIM_KEY}"},
                "azure": {"protocol": "azure", "base_url": sim.root_url,
                          "api_key": "${SIM_KEY}"},
                "claude": {"protocol": "anthropic", "base_url": sim.root_url,
                           "api_key": "${SIM_KEY}"},
                "dead": {"base_url": "http://127.0.0.1:9/v1", "api_key": "${SIM_KEY}"},
                "gemini": {"protocol": "gemini", "base_url": sim.root_url,
                           "api_key": "${SIM_KEY}"},
            },
            "model_groups": {
                "chat": {"deployments": [{"provider": "sim", "model": "gpt-4o-mini",
                                          "price": PRICE}]},
                "azure-chat": {"deployments": [{"provider": "azure", "model": "gpt-4o-mini",
                                                "price": PRICE}]},
                "claude": {"deployments": [{"provider": "claude", "model": "claude-sim",
                                            "price": PRICE}]},
                "gemini": {"deployments": [{"provider": "gemini", "model": "gemini-sim"}]},
                "spread": {"routing": "priority", "deployments": [
                    {"provider": "dead", "model": "gpt-4o-mini", "name": "unreachable"},
                    {"provider": "claude", "model": "claude-sim", "name": "no-batch-api"},
                    # Prices are per vendor and model: the same as in 'chat'.
                    {"provider": "sim", "model": "gpt-4o-mini", "name": "takes-it",
                     "priority": 1, "price": PRICE}]},
            },
            "auth": {"master_key": "${PR_MASTER}"},
            "storage": storage,
        }
        with GatewayProcess(config, env={"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}) as g:
            yield g


class _no_database:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def client(gw: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def finished(c: openai.OpenAI, batch_id: str) -> Batch:
    deadline = time.monotonic() + 10
    while True:
        batch = c.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "cancelled", "expired") \
                or time.monotonic() > deadline:
            return batch
        time.sleep(0.05)


def budget(gw: GatewayProcess, key: str) -> dict[str, Any]:
    result: dict[str, Any] = ok(admin(gw, "GET", f"/admin/keys/{key.split('-')[2]}/budget"))
    return result


def test_a_key_never_sees_another_keys_files_or_batches(gw: GatewayProcess) -> None:
    alice, bob = client(gw, new_key(gw)), client(gw, new_key(gw))
    uploaded = alice.files.create(file=("in.jsonl", jsonl(lines(2))), purpose="batch")
    assert isinstance(uploaded, FileObject) and uploaded.id.startswith("file-pr")
    assert uploaded.filename == "in.jsonl"
    batch = alice.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                 completion_window="24h")
    assert batch.id.startswith("batch_pr") and batch.input_file_id == uploaded.id
    for attempt in (
        lambda: bob.files.retrieve(uploaded.id),
        lambda: bob.files.content(uploaded.id),
        lambda: bob.files.delete(uploaded.id),
        lambda: bob.batches.retrieve(batch.id),
        lambda: bob.batches.cancel(batch.id),
        lambda: bob.batches.create(input_file_id=uploaded.id,
                                   endpoint="/v1/chat/completions", completion_window="24h"),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert [f.id for f in bob.files.list()] == []
    assert [b.id for b in bob.batches.list()] == []
    assert uploaded.id in [f.id for f in alice.files.list()]  # and, soon, its output file
    assert [b.id for b in alice.batches.list()] == [batch.id]
    done = finished(alice, batch.id)
    assert done.status == "completed" and done.output_file_id is not None
    output = alice.files.content(done.output_file_id).content
    assert [json.loads(line)["custom_id"] for line in output.splitlines()] == ["q0", "q1"]
    with pytest.raises(openai.NotFoundError):
        bob.files.content(done.output_file_id)
    assert alice.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        alice.files.retrieve(uploaded.id)


@pytest.mark.parametrize("group", ["chat", "azure-chat"])
def test_a_batch_reserves_its_worst_case_then_settles_its_real_cost(
        gw: GatewayProcess, group: str) -> None:
    key = new_key(gw, daily_budget_usd=1.0)
    alice = client(gw, key)
    items = lines(4, model=group)
    uploaded = alice.files.create(file=("in.jsonl", jsonl(items)), purpose="batch")
    batch = alice.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                 completion_window="24h")
    held = budget(gw, key)
    assert held["reserved_usd"] == pytest.approx(worst_case_usd(items), rel=1e-6)
    assert held["spent_today_usd"] == 0
    done = finished(alice, batch.id)
    assert done.status == "completed" and done.output_file_id is not None
    usage = [json.loads(line)["response"]["body"]["usage"] for line in
             alice.files.content(done.output_file_id).content.splitlines()]
    real = sum(u["prompt_tokens"] * PRICE["input_per_1m"]
               + u["completion_tokens"] * PRICE["output_per_1m"] for u in usage) / 1e6 * BATCH
    assert 0 < real < worst_case_usd(items)
    after = budget(gw, key)
    assert after["reserved_usd"] == 0
    assert after["spent_today_usd"] == pytest.approx(real, rel=1e-6)
    key_id = key.split("-")[2]
    deadline = time.monotonic() + 10
    while True:  # the ledger's record, written by the spool's flush
        rows = ok(admin(gw, "GET", f"/admin/usage?by=key&key={key_id}&since=1h"))["data"]
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert rows[0]["requests"] == 1 and rows[0]["cost_usd"] == pytest.approx(real, rel=1e-6)
    assert rows[0]["prompt_tokens"] == sum(u["prompt_tokens"] for u in usage)
    again = alice.batches.retrieve(batch.id)  # settled once: retrieving again charges nothing
    assert again.status == "completed" and budget(gw, key)["spent_today_usd"] == \
        pytest.approx(real, rel=1e-6)
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    metrics = direct.open(gw.root_url + "/metrics", timeout=5).read().decode()
    assert f'polyroute_requests_total{{endpoint="batches",model_group="{group}",' \
        f'status="200"}}' in metrics


def test_a_batch_beyond_the_budget_is_refused_and_a_poller_settles_the_rest(
        gw: GatewayProcess) -> None:
    items = lines(3, max_tokens=1000)
    key = new_key(gw, daily_budget_usd=worst_case_usd(items) * 1.5)
    alice = client(gw, key)
    uploaded = alice.files.create(file=("in.jsonl", jsonl(items)), purpose="batch")
    first = alice.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                 completion_window="24h")
    with pytest.raises(openai.RateLimitError) as refused:
        alice.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                             completion_window="24h")
    assert refused.value.code == "budget_exceeded"
    deadline = time.monotonic() + 10  # nobody retrieves it: the poller settles it
    while budget(gw, key)["reserved_usd"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert budget(gw, key)["reserved_usd"] == 0 and budget(gw, key)["spent_today_usd"] > 0
    assert alice.batches.retrieve(first.id).status == "completed"


def test_bad_batch_files_and_vendors_without_batches_are_clear_400s(gw: GatewayProcess) -> None:
    alice = client(gw, new_key(gw))
    for content, param in [
        (b"not json\n", "file"),
        (jsonl(lines(1, model="chat") + lines(1, model="azure-chat")), "file"),
        (jsonl(lines(1, model="gemini")), "model"),
    ]:
        with pytest.raises(openai.BadRequestError) as refused:
            alice.files.create(file=("in.jsonl", content), purpose="batch")
        assert refused.value.body is not None
        assert refused.value.body["param"] == param  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        alice.files.create(file=("in.jsonl", jsonl(lines(1))), purpose="assistants")
    with pytest.raises(openai.NotFoundError):
        alice.batches.create(input_file_id="file-missing", endpoint="/v1/chat/completions",
                             completion_window="24h")


def test_anthropic_message_batches_are_owned_reserved_and_settled(gw: GatewayProcess) -> None:
    key = new_key(gw, daily_budget_usd=1.0)
    alice = anthropic.Anthropic(base_url=gw.root_url, api_key=key, max_retries=0)
    bob = anthropic.Anthropic(base_url=gw.root_url, api_key=new_key(gw), max_retries=0)
    params = [{"model": "claude", "max_tokens": 9,
               "messages": [{"role": "user", "content": f"Question {i}?"}]} for i in range(3)]
    batch = alice.messages.batches.create(requests=[  # type: ignore[misc]
        {"custom_id": f"m{i}", "params": p} for i, p in enumerate(params)])
    assert batch.id.startswith("msgbatch_pr") and batch.processing_status == "in_progress"
    prompt = sum(len(json.dumps(p, separators=(",", ":"))) // 4 + 1 for p in params)
    worst = (prompt * PRICE["input_per_1m"] + 27 * PRICE["output_per_1m"]) / 1e6 * BATCH
    assert budget(gw, key)["reserved_usd"] == pytest.approx(worst, rel=1e-6)
    for attempt in (lambda: bob.messages.batches.retrieve(batch.id),
                    lambda: bob.messages.batches.cancel(batch.id),
                    lambda: bob.messages.batches.delete(batch.id)):
        with pytest.raises(anthropic.NotFoundError):
            attempt()
    assert [b.id for b in bob.messages.batches.list()] == []
    deadline = time.monotonic() + 10
    while batch.processing_status != "ended" and time.monotonic() < deadline:
        time.sleep(0.05)
        batch = alice.messages.batches.retrieve(batch.id)
    assert batch.processing_status == "ended"
    assert batch.results_url == f"{gw.root_url}/v1/messages/batches/{batch.id}/results"
    results = list(alice.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in results) == ["m0", "m1", "m2"]
    usage = [r.result.message.usage for r in results if r.result.type == "succeeded"]
    real = sum(u.input_tokens * PRICE["input_per_1m"] + u.output_tokens
               * PRICE["output_per_1m"] for u in usage) / 1e6 * BATCH
    after = budget(gw, key)
    assert len(usage) == 3 and after["reserved_usd"] == 0
    assert after["spent_today_usd"] == pytest.approx(real, rel=1e-6)
    with pytest.raises(anthropic.NotFoundError):
        bob.messages.batches.results(batch.id)
    assert alice.messages.batches.delete(batch.id).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        alice.messages.batches.retrieve(batch.id)


def test_an_upload_fails_over_to_the_next_deployment_with_a_batch_api(
        gw: GatewayProcess) -> None:
    """The group's first deployment cannot be reached, its second has no Batch API (skipped);
    the third takes the file, and the batch runs there."""
    alice = client(gw, new_key(gw))
    uploaded = alice.files.create(file=("in.jsonl", jsonl(lines(2, model="spread"))),
                                  purpose="batch")
    batch = alice.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                 completion_window="24h")
    done = finished(alice, batch.id)
    assert done.status == "completed" and done.request_counts is not None
    assert done.request_counts.completed == 2


def test_failed_lines_are_not_charged(gw: GatewayProcess, sim: SimServer) -> None:
    """The upstream fails one line (a server error): it is in the error file, and only the
    answered lines are settled."""
    key = new_key(gw, daily_budget_usd=1.0)
    alice = client(gw, key)
    uploaded = alice.files.create(file=("in.jsonl", jsonl(lines(3))), purpose="batch")
    sim.set_rules([{"fault": "server_error", "model": "gpt-4o-mini", "times": 1}])
    try:
        batch = alice.batches.create(input_file_id=uploaded.id,
                                     endpoint="/v1/chat/completions", completion_window="24h")
        done = finished(alice, batch.id)
    finally:
        sim.clear_rules()
    assert done.status == "completed" and done.error_file_id and done.output_file_id
    failed = alice.files.content(done.error_file_id).content.splitlines()
    assert [json.loads(line)["response"]["status_code"] for line in failed] == [500]
    usage = [json.loads(line)["response"]["body"]["usage"] for line in
             alice.files.content(done.output_file_id).content.splitlines()]
    real = sum(u["prompt_tokens"] * PRICE["input_per_1m"]
               + u["completion_tokens"] * PRICE["output_per_1m"] for u in usage) / 1e6 * BATCH
    assert len(usage) == 2
    assert budget(gw, key)["spent_today_usd"] == pytest.approx(real, rel=1e-6)


def test_a_cancelled_batch_releases_its_reservation_at_no_cost(gw: GatewayProcess) -> None:
    key = new_key(gw, daily_budget_usd=1.0)
    alice = client(gw, key)
    uploaded = alice.files.create(file=("in.jsonl", jsonl(lines(2))), purpose="batch")
    batch = alice.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                 completion_window="24h", metadata={"sim_delay_ms": "60000"})
    assert budget(gw, key)["reserved_usd"] > 0
    assert alice.batches.cancel(batch.id).status == "cancelling"
    assert finished(alice, batch.id).status == "cancelled"
    after = budget(gw, key)
    assert after["reserved_usd"] == 0 and after["spent_today_usd"] == 0
    key_id = key.split("-")[2]
    deadline = time.monotonic() + 10
    while True:
        rows = ok(admin(gw, "GET", f"/admin/usage?by=status&key={key_id}&since=1h"))["data"]
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [(r["group"]["status"], r["requests"], r["failed_requests"], r["cost_usd"])
            for r in rows] == [(499, 1, 1, 0.0)]


def test_an_openai_batch_runs_on_anthropics_message_batches(gw: GatewayProcess) -> None:
    """A group with only Anthropic deployments: the file stays in polyroute, its lines are
    translated into a Message Batch, and the results come back as OpenAI's output file of
    chat.completion objects; reserved and settled as any batch."""
    key = new_key(gw, daily_budget_usd=1.0)
    alice, bob = client(gw, key), client(gw, new_key(gw))
    content = jsonl(lines(3, model="claude"))
    uploaded = alice.files.create(file=("in.jsonl", content), purpose="batch")
    assert alice.files.content(uploaded.id).content == content
    batch = alice.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                 completion_window="24h")
    assert isinstance(batch, Batch) and batch.status == "in_progress"
    assert budget(gw, key)["reserved_usd"] > 0
    with pytest.raises(openai.NotFoundError):
        bob.batches.retrieve(batch.id)
    done = finished(alice, batch.id)
    assert done.status == "completed" and done.output_file_id and done.error_file_id is None
    assert done.request_counts is not None and done.request_counts.completed == 3
    with pytest.raises(openai.NotFoundError):
        bob.files.content(done.output_file_id)
    answers = [json.loads(line) for line in
               alice.files.content(done.output_file_id).content.splitlines()]
    assert sorted(a["custom_id"] for a in answers) == ["q0", "q1", "q2"]
    completions = [ChatCompletion.model_validate(a["response"]["body"]) for a in answers]
    assert all(c.choices[0].message.content for c in completions)
    real = sum(c.usage.prompt_tokens * PRICE["input_per_1m"]
               + c.usage.completion_tokens * PRICE["output_per_1m"]
               for c in completions if c.usage) / 1e6 * BATCH
    after = budget(gw, key)
    assert after["reserved_usd"] == 0
    assert after["spent_today_usd"] == pytest.approx(real, rel=1e-6)
