"""Bedrock batch inference, simulated: the control plane's ``CreateModelInvocationJob`` (``POST
/model-invocation-job``), ``GetModelInvocationJob`` (``GET /model-invocation-job/{id}``) and
``StopModelInvocationJob`` (``POST …/{id}/stop``), and the little of S3 a job needs (path-style
``PUT``/``GET /{bucket}/{key}``, told apart by its SigV4 scope ``s3``). A job shows
``InProgress`` the first time it is looked at; the second, it reads its input JSONL
(``{"recordId", "modelInput"}``, the model family's InvokeModel body) from the simulated S3,
answers each record as that family does (:mod:`.families`: Anthropic, Nova, Llama 3), and
writes
``{output s3Uri}{job id}/{input name}.out`` of ``{"recordId", "modelInput", "modelOutput"}``
(or ``"error": {"errorCode", "errorMessage"}``) and ``manifest.json.out``, as Bedrock does.
A job of a model no family runs, or whose input has fewer records than Bedrock's minimum
(100, ``BedrockState.min_batch_records``), is refused at creation (``ValidationException``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import msgspec
from aiohttp import web

from polyroute.sim.bedrock.errors import BedrockError, validation
from polyroute.sim.bedrock.families import family
from polyroute.sim.bedrock.state import BedrockState

JOBS_PATH = "/model-invocation-job"
_ACCOUNT = "123456789012"
_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(obj: Any, request_id: str) -> web.Response:
    return web.Response(body=_encode(obj), content_type="application/json",
                        headers={"x-amzn-RequestId": request_id})


def s3_object(request: web.Request, bedrock: BedrockState, body: bytes,
              request_id: str) -> web.Response:
    """``PUT``/``GET /{bucket}/{key}``; a missing key is S3's 404 ``NoSuchKey`` (XML)."""
    key = unquote(request.raw_path.partition("?")[0]).lstrip("/")
    if request.method == "PUT":
        bedrock.objects[key] = body
        return web.Response(status=200, headers={"ETag": '"sim"', "x-amz-request-id":
                                                 request_id})
    if request.method == "GET" and key in bedrock.objects:
        return web.Response(body=bedrock.objects[key], content_type="application/octet-stream",
                            headers={"x-amz-request-id": request_id})
    if request.method != "GET":
        return _s3_error(405, "MethodNotAllowed", "The specified method is not allowed.",
                         request_id)
    return _s3_error(404, "NoSuchKey", "The specified key does not exist.", request_id)


def _s3_error(status: int, code: str, message: str, request_id: str) -> web.Response:
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>'
           f"{message}</Message><RequestId>{request_id}</RequestId></Error>")
    return web.Response(status=status, text=xml, content_type="application/xml",
                        headers={"x-amz-request-id": request_id})


def jobs(request: web.Request, bedrock: BedrockState, body: bytes,
         request_id: str) -> web.Response:
    raw_path = request.raw_path.partition("?")[0]
    rest = raw_path[len(JOBS_PATH):].strip("/")
    if request.method == "POST" and not rest:
        return _json(_create(request, bedrock, body), request_id)
    stop = rest.endswith("/stop")
    job = _job(bedrock, unquote(rest.removesuffix("/stop")))
    if request.method == "POST" and stop:
        if job["status"] in ("Completed", "Failed", "Stopped", "Expired",
                             "PartiallyCompleted"):
            raise BedrockError(400, "ValidationException",
                               f"The job is in status {job['status']} and cannot be stopped.")
        job.update(status="Stopped", lastModifiedTime=_now(), endTime=_now())
        return _json({}, request_id)
    if request.method == "GET" and not stop:
        if job["status"] == "InProgress":  # a look while it runs, then it is done
            _run(request, bedrock, job)
        elif job["status"] == "Submitted":
            job.update(status="InProgress", lastModifiedTime=_now())
        return _json(job, request_id)
    raise BedrockError(404, "UnknownOperationException",
                       f"Unknown operation {request.method} {raw_path}")


def _create(request: web.Request, bedrock: BedrockState, body: bytes) -> dict[str, str]:
    try:
        sent = _decode(body)
        name, role, model = sent["jobName"], sent["roleArn"], sent["modelId"]
        source = sent["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
        target = sent["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
    except (msgspec.DecodeError, KeyError, TypeError):
        raise validation("1 validation error detected: the request does not match "
                         "CreateModelInvocationJob's shape") from None
    if not (isinstance(source, str) and source.startswith("s3://")
            and isinstance(target, str) and target.startswith("s3://")):
        raise validation("1 validation error detected: s3Uri must match s3://…")
    if not isinstance(role, str) or ":role/" not in role:
        raise validation(f"1 validation error detected: Value '{role}' at 'roleArn' failed to "
                         "satisfy constraint")
    if family(str(model)) is None:
        raise validation(f"The model {model} does not support batch inference.")
    content = bedrock.objects.get(source.removeprefix("s3://"))
    if content is not None:  # an input that is not there fails the job when it runs
        records = sum(1 for line in content.splitlines() if line.strip())
        if records < bedrock.min_batch_records:
            raise validation(f"The input has {records} records; a batch inference job needs "
                             f"at least {bedrock.min_batch_records} (quota 'Minimum number of "
                             "records per batch inference job').")
    job_id = bedrock.request_id().replace("-", "")[:12]
    region = "us-east-1"
    arn = f"arn:aws:bedrock:{region}:{_ACCOUNT}:model-invocation-job/{job_id}"
    now = _now()
    bedrock.jobs[job_id] = {
        "jobArn": arn, "jobName": name, "modelId": model, "roleArn": role,
        "status": "Submitted", "submitTime": now, "lastModifiedTime": now,
        "inputDataConfig": sent["inputDataConfig"], "outputDataConfig": sent["outputDataConfig"],
        "timeoutDurationInHours": sent.get("timeoutDurationInHours", 24),
        "jobExpirationTime": now}
    return {"jobArn": arn}


def _job(bedrock: BedrockState, identifier: str) -> dict[str, Any]:
    job = bedrock.jobs.get(identifier.rpartition("/")[2])
    if job is None:
        raise BedrockError(404, "ResourceNotFoundException",
                           f"The job {identifier} could not be found.")
    return job


def _run(request: web.Request, bedrock: BedrockState, job: dict[str, Any]) -> None:
    """The whole job at once."""
    source = str(job["inputDataConfig"]["s3InputDataConfig"]["s3Uri"])
    content = bedrock.objects.get(source.removeprefix("s3://"))
    if content is None:
        job.update(status="Failed", message=f"The input {source} could not be read.",
                   lastModifiedTime=_now(), endTime=_now())
        return
    run = family(str(job["modelId"]))
    assert run is not None  # checked when the job was created
    lines, succeeded, failed = [], 0, 0
    for line in content.splitlines():
        if not line.strip():
            continue
        record = _decode(line)
        body = record.get("modelInput")
        output, error = run(request, str(job["modelId"]), body) if isinstance(body, dict) \
            else (None, "Malformed input request: modelInput must be an object")
        out: dict[str, Any] = {"recordId": record.get("recordId"), "modelInput": body}
        if output is not None:
            out["modelOutput"] = output
            succeeded += 1
        else:
            out["error"] = {"errorCode": 400, "errorMessage": error}
            failed += 1
        lines.append(_encode(out))
    job_id = str(job["jobArn"]).rpartition("/")[2]
    target = str(job["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]).removeprefix("s3://")
    folder = f"{target.rstrip('/')}/{job_id}/"
    name = source.rpartition("/")[2]
    bedrock.objects[f"{folder}{name}.out"] = b"\n".join(lines) + b"\n"
    total = succeeded + failed
    bedrock.objects[f"{folder}manifest.json.out"] = _encode({
        "totalRecordCount": total, "processedRecordCount": total,
        "successRecordCount": succeeded, "errorRecordCount": failed})
    job.update(status="Completed" if not failed
               else "PartiallyCompleted" if succeeded else "Failed",
               lastModifiedTime=_now(), endTime=_now(), totalRecordCount=total,
               processedRecordCount=total, successRecordCount=succeeded,
               errorRecordCount=failed)
