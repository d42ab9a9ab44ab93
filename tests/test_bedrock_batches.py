"""An OpenAI batch run as a Bedrock batch inference job, through a real polyroute process and
the official openai SDK: the file's chat lines become Anthropic-on-Bedrock InvokeModel records
in the configured S3 location (read back with boto3's own ``s3`` client), the job runs, its
``.out`` file comes back as OpenAI's output file, and the batch is settled in the ledger at
its real cost; and the config's batch options are checked with one-line errors."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import httpx
import openai
import pytest
import yaml
from botocore.validate import ParamValidator
from openai.types import Batch
from openai.types.chat import ChatCompletion

from polyroute.adapters.bedrock_converse.batch import s3_error
from polyroute.config import ConfigError, load_config
from polyroute.engine.batch_translation import bedrock_batch
from polyroute.errors import UpstreamAuthError, UpstreamRateLimited, UpstreamRejected
from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, admin, new_key, ok
from tests.support.sim import SimServer

ACCESS_KEY = "AKIDBATCH0001"
SECRET = "bedrock-batch-secret-4e2a"
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/polyroute-batch"
PRICE = {"input_per_1m": 100.0, "output_per_1m": 300.0}
BATCH = 0.5  # the catalog's batch fraction (Bedrock's batch inference is half price)
CREATE_JOB = botocore.session.get_session().get_service_model("bedrock").operation_model(
    "CreateModelInvocationJob").input_shape


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=SECRET) as server:
        yield server


@pytest.fixture(scope="module")
def gw(sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = str(tmp_path_factory.mktemp("aws"))
    options = {"region": REGION, "batch_s3_uri": "s3://polyroute-batches/jobs/",
               "batch_role_arn": ROLE, "batch_s3_endpoint": sim.root_url}
    config = {
        "providers": {"bedrock": {"protocol": "bedrock", "base_url": sim.root_url,
                                  "options": options},
                      "plain": {"protocol": "bedrock", "base_url": sim.root_url,
                                "region": REGION},
                      "capped": {"protocol": "bedrock", "base_url": sim.root_url,
                                 "options": {**options, "batch_max_records": 120,
                                             "batch_max_file_bytes": 10_000}}},
        "model_groups": {
            "claude": {"deployments": [{"provider": "bedrock", "model":
                                        "anthropic.claude-sim-v1:0", "price": PRICE}]},
            "nova": {"deployments": [{"provider": "bedrock", "model":
                                      "us.amazon.nova-lite-v1:0", "price": PRICE}]},
            "llama": {"deployments": [{"provider": "bedrock", "model":
                                       "meta.llama3-1-8b-instruct-v1:0", "price": PRICE}]},
            "titan": {"deployments": [{"provider": "bedrock", "model":
                                       "amazon.titan-text-express-v1", "price": PRICE}]},
            "moving": {"deployments": [{"provider": "bedrock", "name": "moving", "price": PRICE,
                                        "model": "us.amazon.nova-lite-v1:0"}]},
            "capped": {"deployments": [{"provider": "capped", "model":
                                        "anthropic.claude-sim-v1:0", "price": PRICE}]},
            "unbatched": {"deployments": [{"provider": "plain", "model": "claude-sim"}]},
        },
        "auth": {"master_key": "${PR_MASTER}"},
        "storage": {"flush_interval_s": 0.05, "batch_poll_s": 0.2},
    }
    env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": f"{tmp}/none",
           "AWS_SHARED_CREDENTIALS_FILE": f"{tmp}/none", "PR_MASTER": MASTER_KEY}
    with GatewayProcess(config, env=env) as g:
        yield g


def lines(n: int, model: str = "claude") -> bytes:
    items = [{"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": model, "max_tokens": 9,
                       "messages": [{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": f"Question {i}?"}],
                       "user": "end-user-7"}}
             for i in range(n)]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def job_arn(sim: SimServer, name: str) -> str:
    """The ARN of the job named ``name`` (the simulator tells; Bedrock would list jobs)."""
    return str(httpx.get(f"{sim.root_url}/_sim/bedrock/jobs").json()[name])


def budget(gw: GatewayProcess, key: str) -> dict[str, Any]:
    result: dict[str, Any] = ok(admin(gw, "GET", f"/admin/keys/{key.split('-')[2]}/budget"))
    return result


def finished(c: openai.OpenAI, batch_id: str) -> Batch:
    deadline = time.monotonic() + 10
    while True:
        batch = c.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "cancelled", "expired") \
                or time.monotonic() > deadline:
            return batch
        time.sleep(0.05)


def test_an_openai_batch_runs_as_a_bedrock_batch_inference_job(gw: GatewayProcess,
                                                                sim: SimServer) -> None:
    key = new_key(gw, daily_budget_usd=1.0)
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    content = lines(100)
    uploaded = client.files.create(file=("in.jsonl", content), purpose="batch")
    assert client.files.content(uploaded.id).content == content
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    assert batch.status == "in_progress" and batch.request_counts is not None
    assert batch.request_counts.total == 100
    assert budget(gw, key)["reserved_usd"] > 0

    # What polyroute wrote to S3: Anthropic's InvokeModel bodies for Bedrock, no model in them.
    s3 = boto3.client("s3", endpoint_url=sim.root_url, region_name=REGION,
                      aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET)
    written = s3.get_object(Bucket="polyroute-batches",
                            Key=f"jobs/{batch.id}/input.jsonl")["Body"].read()
    records = [json.loads(line) for line in written.splitlines()]
    assert [r["recordId"] for r in records][:3] == ["R0000000001", "R0000000002", "R0000000003"]
    assert len(records) == 100
    first = records[0]["modelInput"]
    assert first["anthropic_version"] == "bedrock-2023-05-31"
    assert "model" not in first and "metadata" not in first  # Bedrock's body has neither
    assert first["system"] == "Be brief." and first["max_tokens"] == 9
    assert len(first["messages"]) == 1 and first["messages"][0]["role"] == "user"
    assert "Question 0?" in json.dumps(first["messages"])

    # The job polyroute created, as boto3's own bedrock client reads it; the request's parts
    # valid against the service model.
    bedrock = boto3.client("bedrock", endpoint_url=sim.root_url, region_name=REGION,
                           aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET)
    job = bedrock.get_model_invocation_job(
        jobIdentifier=job_arn(sim, batch.id.replace("_", "-")))
    assert job["roleArn"] == ROLE  # its status depends on the gateway's poller
    assert job["modelId"] == "anthropic.claude-sim-v1:0"
    assert job["jobName"] == batch.id.replace("_", "-")
    sent = {key: job[key] for key in ("jobName", "roleArn", "modelId", "inputDataConfig",
                                      "outputDataConfig")}
    report = ParamValidator().validate(sent, CREATE_JOB)
    assert not report.has_errors(), report.generate_report()
    assert sent["inputDataConfig"]["s3InputDataConfig"]["s3Uri"] == \
        f"s3://polyroute-batches/jobs/{batch.id}/input.jsonl"

    done = finished(client, batch.id)
    assert done.status == "completed" and done.output_file_id and done.error_file_id is None
    assert done.request_counts is not None and done.request_counts.completed == 100
    answers = [json.loads(line) for line in
               client.files.content(done.output_file_id).content.splitlines()]
    assert sorted(a["custom_id"] for a in answers) == sorted(f"q{i}" for i in range(100))
    completions = [ChatCompletion.model_validate(a["response"]["body"]) for a in answers]
    assert all(c.choices[0].message.content for c in completions)
    real = sum(c.usage.prompt_tokens * PRICE["input_per_1m"]
               + c.usage.completion_tokens * PRICE["output_per_1m"]
               for c in completions if c.usage) / 1e6 * BATCH
    after = budget(gw, key)
    assert after["reserved_usd"] == 0
    assert after["spent_today_usd"] == pytest.approx(real, rel=1e-6) and real > 0


def test_a_stopped_job_is_cancelled_at_no_cost(gw: GatewayProcess) -> None:
    key = new_key(gw, daily_budget_usd=1.0)
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    uploaded = client.files.create(file=("in.jsonl", lines(100)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    assert client.batches.cancel(batch.id).status == "cancelled"
    after = budget(gw, key)
    assert after["reserved_usd"] == 0 and after["spent_today_usd"] == 0


def s3_records(sim: SimServer, batch_id: str) -> list[dict[str, Any]]:
    """The records polyroute wrote for a batch, as boto3's own s3 client reads them."""
    s3 = boto3.client("s3", endpoint_url=sim.root_url, region_name=REGION,
                      aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET)
    written = s3.get_object(Bucket="polyroute-batches",
                            Key=f"jobs/{batch_id}/input.jsonl")["Body"].read()
    return [json.loads(line) for line in written.splitlines()]


@pytest.mark.parametrize("group", ["nova", "llama"])
def test_nova_and_llama_batches_run_in_their_familys_shape(gw: GatewayProcess, sim: SimServer,
                                                           group: str) -> None:
    key = new_key(gw, daily_budget_usd=1.0)
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    uploaded = client.files.create(file=("in.jsonl", lines(100, model=group)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    first = s3_records(sim, batch.id)[0]["modelInput"]
    if group == "nova":
        assert first["schemaVersion"] == "messages-v1"
        assert first["system"] == [{"text": "Be brief."}]
        assert first["messages"] == [{"role": "user", "content": [{"text": "Question 0?"}]}]
        assert first["inferenceConfig"] == {"maxTokens": 9}
    else:
        assert first == {"prompt": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>"
                                   "\n\nBe brief.<|eot_id|><|start_header_id|>user"
                                   "<|end_header_id|>\n\nQuestion 0?<|eot_id|>"
                                   "<|start_header_id|>assistant<|end_header_id|>\n\n",
                         "max_gen_len": 9}
    done = finished(client, batch.id)
    assert done.status == "completed" and done.output_file_id and done.error_file_id is None
    answers = [json.loads(line) for line in
               client.files.content(done.output_file_id).content.splitlines()]
    assert len(answers) == 100
    completions = [ChatCompletion.model_validate(a["response"]["body"]) for a in answers]
    assert all(c.choices[0].message.content for c in completions)
    real = sum(c.usage.prompt_tokens * PRICE["input_per_1m"]
               + c.usage.completion_tokens * PRICE["output_per_1m"]
               for c in completions if c.usage) / 1e6 * BATCH
    after = budget(gw, key)
    assert after["reserved_usd"] == 0
    assert after["spent_today_usd"] == pytest.approx(real, rel=1e-6) and real > 0


def test_a_model_of_no_batch_family_is_refused_before_anything_is_uploaded(
        gw: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=("in.jsonl", lines(100, model="titan")), purpose="batch")
    error = info.value.body
    assert isinstance(error, dict) and error["code"] == "unsupported_endpoint"
    assert "amazon.titan-text-express-v1" in error["message"]
    assert "Amazon Nova" in error["message"] and "Meta Llama 3" in error["message"]


@pytest.mark.parametrize(("group", "count", "named"), [
    ("claude", 99, "at least 100 records"),
    ("capped", 121, "at most 120 records"),
    ("capped", 110, "at most 10000 bytes"),
])
def test_a_batch_outside_bedrocks_limits_is_refused_and_its_reservation_released(
        gw: GatewayProcess, sim: SimServer, group: str, count: int, named: str) -> None:
    key = new_key(gw, daily_budget_usd=1.0)
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    uploaded = client.files.create(file=("in.jsonl", lines(count, model=group)),
                                   purpose="batch")
    jobs_before = len(httpx.get(f"{sim.root_url}/_sim/bedrock/jobs").json())
    with pytest.raises(openai.BadRequestError) as info:
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                              completion_window="24h")
    error = info.value.body
    assert isinstance(error, dict) and named in error["message"]
    assert error["param"] == "input_file_id"
    assert error["code"] in ("batch_too_small", "batch_too_large")
    after = budget(gw, key)
    assert after["reserved_usd"] == 0 and after["spent_today_usd"] == 0
    assert client.batches.list().data == []  # nothing was created
    assert len(httpx.get(f"{sim.root_url}/_sim/bedrock/jobs").json()) == jobs_before
def test_a_bedrock_provider_without_batch_options_runs_no_batches(gw: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=("in.jsonl", lines(1, model="unbatched")), purpose="batch")
    assert "batch_s3_uri" in str(info.value)


@pytest.mark.parametrize(("options", "key"), [
    ("{region: us-east-1, batch_s3_uri: 'https://bucket/x', batch_role_arn: " + ROLE + "}",
     "batch_s3_uri"),
    ("{region: us-east-1, batch_s3_uri: 's3://bucket/x/', batch_role_arn: role}",
     "batch_role_arn"),
    ("{region: us-east-1, batch_role_arn: " + ROLE + "}", "batch_s3_uri"),
    ("{region: us-east-1, batch_min_records: 200, batch_max_records: 150}",
     "batch_min_records"),
    ("{region: us-east-1, batch_max_file_bytes: 0}", "batch_max_file_bytes"),
])
def test_batch_options_are_checked_with_one_line_errors(tmp_path: Path, options: str,
                                                        key: str) -> None:
    path = tmp_path / "polyroute.yaml"
    path.write_text("providers:\n  aws:\n    protocol: bedrock\n"
                    "    base_url: https://bedrock-runtime.us-east-1.amazonaws.com\n"
                    f"    options: {options}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), {})
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message, message
    assert f"providers.aws.options.{key}" in message and "fix:" in message


def test_s3_errors_and_job_states_are_mapped() -> None:
    missing = s3_error(404, b"<Error><Code>NoSuchBucket</Code><Message>The specified bucket "
                       b"does not exist</Message></Error>", {}, "aws")
    assert isinstance(missing, UpstreamRejected) and missing.status == 404
    assert "NoSuchBucket" in missing.message and "does not exist" in missing.message
    denied = s3_error(403, b"<Error><Code>AccessDenied</Code></Error>", {}, "aws")
    assert isinstance(denied, UpstreamAuthError)
    assert isinstance(s3_error(503, b"<Error><Code>SlowDown</Code></Error>", {}, "aws"),
                      UpstreamRateLimited)
    shown = {status: bedrock_batch("batch_x", {"status": status, "endTime":
                                               "2026-01-02T03:04:05.000Z"}, "f", None, 2)
             for status in ("Submitted", "Stopping", "PartiallyCompleted", "Stopped",
                            "Failed", "Expired")}
    assert [s["status"] for s in shown.values()] == [
        "in_progress", "cancelling", "completed", "cancelled", "failed", "expired"]
    assert shown["Stopped"]["cancelled_at"] == 1767323045
    assert shown["Failed"]["errors"]["data"][0]["code"] == "batch_failed"


def reload(gw: GatewayProcess, config: dict[str, Any]) -> None:
    before = gw.log().count("config reloaded")
    gw.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    os.kill(gw.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while gw.log().count("config reloaded") == before:
        assert time.monotonic() < deadline, gw.log()[-2000:]
        time.sleep(0.02)


def test_a_file_written_for_one_family_is_not_run_on_another_after_a_reload(
        gw: GatewayProcess) -> None:
    """The deployment's model changed family after the upload (Nova → Llama): the records
    are Nova's, so the batch is refused and its reservation released, not uploaded to fail."""
    key = new_key(gw, daily_budget_usd=1.0)
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    uploaded = client.files.create(file=("in.jsonl", lines(100, model="moving")),
                                   purpose="batch")
    original = yaml.safe_load(gw.config_path.read_text(encoding="utf-8"))
    changed = json.loads(json.dumps(original))
    changed["model_groups"]["moving"]["deployments"][0]["model"] = \
        "meta.llama3-1-8b-instruct-v1:0"
    reload(gw, changed)
    try:
        with pytest.raises(openai.BadRequestError) as info:
            client.batches.create(input_file_id=uploaded.id,
                                  endpoint="/v1/chat/completions", completion_window="24h")
        message = str(info.value)
        assert "meta.llama3-1-8b-instruct-v1:0" in message and "Amazon Nova" in message
        after = budget(gw, key)
        assert after["reserved_usd"] == 0 and after["spent_today_usd"] == 0
    finally:
        reload(gw, original)

