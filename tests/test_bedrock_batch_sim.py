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


def test_a_job_reads_its_input_from_s3_and_writes_its_output_there(sim: SimServer) -> None:
    s3, bedrock = aws(sim, "s3"), aws(sim, "bedrock")
    lines = [record(1, "hello"), record(2, "again")]
    s3.put_object(Bucket="batches", Key="in/job1.jsonl",
                  Body=b"\n".join(json.dumps(x).encode() for x in lines))
    assert s3.get_object(Bucket="batches", Key="in/job1.jsonl")["Body"].read().count(b"\n") == 1
    arn = bedrock.create_model_invocation_job(
        jobName="job-1", roleArn=ROLE, modelId=MODEL,
        inputDataConfig={"s3InputDataConfig": {"s3Uri": "s3://batches/in/job1.jsonl"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://batches/out/"}})["jobArn"]
    assert arn.startswith("arn:aws:bedrock:") and ":model-invocation-job/" in arn
    assert bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] == "InProgress"
    job = bedrock.get_model_invocation_job(jobIdentifier=arn)
    assert job["status"] == "Completed" and job["successRecordCount"] == 2
    assert job["submitTime"].year >= 2024  # botocore parsed the ISO 8601 timestamp
    job_id = arn.rpartition("/")[2]
    out = s3.get_object(Bucket="batches", Key=f"out/{job_id}/job1.jsonl.out")["Body"].read()
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["recordId"] for r in results] == ["R0000000001", "R0000000002"]
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
