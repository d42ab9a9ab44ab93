"""The simulator's Bedrock batch inference and minimal S3, read by boto3's own ``bedrock`` and
``s3`` clients (their parsers are the proof that the answers have AWS's shapes), with the
signatures checked against the secret."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.sim import SimServer

SECRET = "bedrock-sim-secret-batch"
MODEL = "anthropic.claude-sim-v1:0"
ROLE = "arn:aws:iam::123456789012:role/batch"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=SECRET) as server:
        yield server


def aws(sim: SimServer, service: str, secret: str = SECRET) -> Any:
    return boto3.client(service, endpoint_url=sim.root_url, region_name="us-east-1",
                        aws_access_key_id="AKIDSIM", aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1, "mode": "standard"},
                                      s3={"addressing_style": "path"}))


def record(n: int, text: str) -> dict[str, Any]:
    return {"recordId": f"R{n:010d}", "modelInput": {
        "anthropic_version": "bedrock-2023-05-31", "max_tokens": 16,
        "messages": [{"role": "user", "content": text}]}}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"\n".join(json.dumps(x).encode() for x in lines)


def run_job(sim: SimServer, name: str, model: str, lines: list[dict[str, Any]]
            ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The job as GetModelInvocationJob has it when it ended, and its output records."""
    s3, bedrock = aws(sim, "s3"), aws(sim, "bedrock")
    s3.put_object(Bucket="batches", Key=f"in/{name}.jsonl", Body=jsonl(lines))
    arn = bedrock.create_model_invocation_job(
        jobName=name, roleArn=ROLE, modelId=model,
        inputDataConfig={"s3InputDataConfig": {"s3Uri": f"s3://batches/in/{name}.jsonl"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://batches/out/"}})["jobArn"]
    bedrock.get_model_invocation_job(jobIdentifier=arn)  # InProgress
    job = bedrock.get_model_invocation_job(jobIdentifier=arn)
    out = s3.get_object(Bucket="batches", Key=f"out/{arn.rpartition('/')[2]}/{name}.jsonl.out")
    return job, [json.loads(line) for line in out["Body"].read().splitlines()]


def test_a_job_reads_its_input_from_s3_and_writes_its_output_there(sim: SimServer) -> None:
    s3, bedrock = aws(sim, "s3"), aws(sim, "bedrock")
    lines = [record(1, "hello"), record(2, "again")] + [record(n, "more") for n in range(3, 101)]
    s3.put_object(Bucket="batches", Key="in/job1.jsonl", Body=jsonl(lines))
    assert s3.get_object(Bucket="batches", Key="in/job1.jsonl")["Body"].read().count(b"\n") == 99
    arn = bedrock.create_model_invocation_job(
        jobName="job-1", roleArn=ROLE, modelId=MODEL,
        inputDataConfig={"s3InputDataConfig": {"s3Uri": "s3://batches/in/job1.jsonl"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://batches/out/"}})["jobArn"]
    assert arn.startswith("arn:aws:bedrock:") and ":model-invocation-job/" in arn
    assert bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] == "InProgress"
    job = bedrock.get_model_invocation_job(jobIdentifier=arn)
    assert job["status"] == "Completed" and job["successRecordCount"] == 100
    assert job["submitTime"].year >= 2024  # botocore parsed the ISO 8601 timestamp
    job_id = arn.rpartition("/")[2]
    out = s3.get_object(Bucket="batches", Key=f"out/{job_id}/job1.jsonl.out")["Body"].read()
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["recordId"] for r in results][:2] == ["R0000000001", "R0000000002"]
    assert all(r["modelOutput"]["type"] == "message" and r["modelOutput"]["usage"]["output_tokens"]
               for r in results)
    with pytest.raises(ClientError) as stopped:  # a finished job cannot be stopped
        bedrock.stop_model_invocation_job(jobIdentifier=arn)
    assert stopped.value.response["Error"]["Code"] == "ValidationException"


def test_stop_unknown_jobs_missing_keys_and_bad_signatures(sim: SimServer) -> None:
    s3, bedrock = aws(sim, "s3"), aws(sim, "bedrock")
    arn = bedrock.create_model_invocation_job(
        jobName="job-2", roleArn=ROLE, modelId=MODEL,
        inputDataConfig={"s3InputDataConfig": {"s3Uri": "s3://batches/in/none.jsonl"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://batches/out/"}})["jobArn"]
    bedrock.stop_model_invocation_job(jobIdentifier=arn)
    assert bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] == "Stopped"
    with pytest.raises(ClientError) as unknown:
        bedrock.get_model_invocation_job(jobIdentifier="nosuchjob")
    assert unknown.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket="batches", Key="no/such/key")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(ClientError) as forged:
        aws(sim, "s3", secret="wrong").put_object(Bucket="batches", Key="x", Body=b"x")
    assert forged.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_a_job_of_fewer_than_100_records_is_refused_at_creation(sim: SimServer) -> None:
    s3, bedrock = aws(sim, "s3"), aws(sim, "bedrock")
    s3.put_object(Bucket="batches", Key="in/small.jsonl",
                  Body=jsonl([record(n, "hi") for n in range(1, 100)]))
    with pytest.raises(ClientError) as refused:
        bedrock.create_model_invocation_job(
            jobName="small", roleArn=ROLE, modelId=MODEL,
            inputDataConfig={"s3InputDataConfig": {"s3Uri": "s3://batches/in/small.jsonl"}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://batches/out/"}})
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "99 records" in error["Message"] and "at least 100" in error["Message"]


def test_a_model_that_runs_no_batches_is_refused_at_creation(sim: SimServer) -> None:
    with pytest.raises(ClientError) as refused:
        aws(sim, "bedrock").create_model_invocation_job(
            jobName="titan", roleArn=ROLE, modelId="amazon.titan-text-express-v1",
            inputDataConfig={"s3InputDataConfig": {"s3Uri": "s3://batches/in/x.jsonl"}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://batches/out/"}})
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def nova(n: int, **extra: Any) -> dict[str, Any]:
    return {"recordId": f"R{n:010d}", "modelInput": {
        "schemaVersion": "messages-v1", "system": [{"text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"text": f"Question {n}?"}]}],
        "inferenceConfig": {"maxTokens": 20, "topK": 5}, **extra}}


def test_a_nova_job_answers_in_novas_invoke_shape(sim: SimServer) -> None:
    lines = [nova(n) for n in range(1, 100)] + [nova(100, additionalModelRequestFields={})]
    job, results = run_job(sim, "nova1", "us.amazon.nova-lite-v1:0", lines)
    assert job["status"] == "PartiallyCompleted"
    assert (job["successRecordCount"], job["errorRecordCount"]) == (99, 1)
    output = results[0]["modelOutput"]
    assert set(output) == {"output", "stopReason", "usage"}
    assert output["output"]["message"]["role"] == "assistant"
    assert output["output"]["message"]["content"][0]["text"]
    assert output["stopReason"] in ("end_turn", "max_tokens")
    assert output["usage"]["inputTokens"] > 0 and output["usage"]["outputTokens"] > 0
    assert results[-1]["error"]["errorCode"] == 400
    assert "additionalModelRequestFields" in results[-1]["error"]["errorMessage"]


def llama(n: int, **extra: Any) -> dict[str, Any]:
    return {"recordId": f"R{n:010d}", "modelInput": {
        "prompt": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
                  f"Question {n}?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        "max_gen_len": 3, "temperature": 0.5, "top_p": 0.9, **extra}}


def test_a_llama_job_answers_in_llamas_invoke_shape(sim: SimServer) -> None:
    lines = [llama(n) for n in range(1, 100)] + [llama(100, max_gen_len=4096)]
    job, results = run_job(sim, "llama1", "meta.llama3-1-8b-instruct-v1:0", lines)
    assert (job["successRecordCount"], job["errorRecordCount"]) == (99, 1)
    output = results[0]["modelOutput"]
    assert set(output) == {"generation", "prompt_token_count", "generation_token_count",
                           "stop_reason"}
    assert output["generation"] and output["stop_reason"] == "length"  # 3 tokens
    assert output["generation_token_count"] == 3 and output["prompt_token_count"] > 0
    assert "max_gen_len" in results[-1]["error"]["errorMessage"]
