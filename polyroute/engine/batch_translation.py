"""An OpenAI batch run on Anthropic's Message Batches or as a Bedrock batch inference job:
pure functions. The file's chat lines become Message Batch requests (the chat translation
every request gets) or the records of the model's family (Anthropic, Nova, Llama), and the
results come back as OpenAI's output and error files and batch object."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import msgspec

from polyroute.adapters.anthropic_messages import translate
from polyroute.adapters.bedrock_converse.families import BatchFamily
from polyroute.engine.batch_file import CHAT_URLS
from polyroute.errors import GatewayError, InvalidRequest
from polyroute.model.chat import ChatRequest, ChatResponse
from polyroute.model.upstream import Deployment
from polyroute.model.usage import CompletionTokensDetails, PromptTokensDetails, Usage

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode
_chat = msgspec.json.Decoder(ChatRequest)
_STATUS = {"in_progress": "in_progress", "canceling": "cancelling"}


def to_anthropic(items: list[dict[str, Any]], deployment: Deployment,
                 cap: int | None) -> list[dict[str, Any]]:
    """Each line's body as Message Batch ``params`` for ``deployment``; ``cap``: the output
    limit reserved for lines that set none."""
    requests = []
    for number, (item, request) in enumerate(
            zip(items, _chat_requests(items, cap, "Anthropic's Message Batches"),
                strict=True), 1):
        try:
            params = _decode(translate.chat_body(request, deployment.model,
                                                 deployment.endpoint.quirks, deployment.name))
        except GatewayError as exc:  # what Anthropic cannot take (n > 1, logprobs …)
            raise InvalidRequest(f"line {number} of the batch file: {exc.message}",
                                 param="file") from None
        params.pop("stream", None)
        requests.append({"custom_id": item["custom_id"], "params": params})
    return requests


def _chat_requests(items: list[dict[str, Any]], cap: int | None,
                   runner: str) -> list[ChatRequest]:
    """The lines' bodies as chat requests, ``cap`` on those that set no output limit."""
    requests = []
    for number, item in enumerate(items, 1):
        where = f"line {number} of the batch file"
        if item["url"] not in CHAT_URLS:
            raise InvalidRequest(f"{where}: only chat completions run on {runner}.",
                                 param="file")
        try:
            request = _chat.decode(_encode(item["body"]))
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise InvalidRequest(f"{where}: {exc}", param="file") from None
        if cap is not None and request.max_tokens is None \
                and request.max_completion_tokens is None:
            request.max_completion_tokens = cap
        requests.append(request)
    return requests


def openai_results(content: bytes, deployment: str) -> tuple[list[bytes], list[bytes]]:
    """A results file as OpenAI's output lines (succeeded) and error lines (the rest)."""
    outputs: list[bytes] = []
    errors: list[bytes] = []
    now = int(time.time())
    for line in content.splitlines():
        if not line.strip():
            continue
        item = _decode(line)
        custom_id = item.get("custom_id")
        result = item.get("result") or {}
        kind = result.get("type")
        head = {"id": f"batch_req_{custom_id}", "custom_id": custom_id}
        if kind == "succeeded":
            message = result.get("message") or {}
            answer = translate.parse_response(_encode(message), deployment, now)
            outputs.append(_encode({**head, "response": {
                "status_code": 200, "request_id": message.get("id"),
                "body": completion(answer)}, "error": None}))
        elif kind == "errored":
            error = (result.get("error") or {}).get("error") or {}
            errors.append(_encode({**head, "response": {
                "status_code": 400, "request_id": None, "body": {"error": {
                    "message": error.get("message", ""), "type": error.get("type"),
                    "param": None, "code": None}}}, "error": None}))
        else:  # canceled, expired
            errors.append(_encode({**head, "response": None, "error": {
                "code": f"batch_{kind}", "message": f"The request was {kind}."}}))
    return outputs, errors


def completion(answer: ChatResponse) -> dict[str, Any]:
    """A chat.completion object, as ``/v1/chat/completions`` answers."""
    body: dict[str, Any] = msgspec.to_builtins(answer)
    body.pop("raw", None)
    body.pop("native", None)
    return {"object": "chat.completion", **body}


def openai_batch(oid: str, upstream: dict[str, Any], input_file_id: str,
                 metadata: Any) -> dict[str, Any]:
    """Anthropic's Message Batch object as OpenAI's batch object (files not yet named)."""
    counts = upstream.get("request_counts") or {}
    total = sum(v for v in counts.values() if isinstance(v, int))
    failed = sum(counts.get(k, 0) for k in ("errored", "canceled", "expired"))
    status = _STATUS.get(upstream.get("processing_status", ""), "completed")
    if status == "completed" and total and counts.get("canceled", 0) == total:
        status = "cancelled"
    elif status == "completed" and total and counts.get("expired", 0) == total:
        status = "expired"
    ended = _unix(upstream.get("ended_at"))
    created = _unix(upstream.get("created_at"))
    return {
        "id": oid, "object": "batch", "endpoint": "/v1/chat/completions", "errors": None,
        "input_file_id": input_file_id, "completion_window": "24h", "status": status,
        "output_file_id": None, "error_file_id": None, "created_at": created,
        "in_progress_at": created, "expires_at": _unix(upstream.get("expires_at")),
        "finalizing_at": ended, "completed_at": ended if status == "completed" else None,
        "failed_at": None, "expired_at": ended if status == "expired" else None,
        "cancelling_at": _unix(upstream.get("cancel_initiated_at")),
        "cancelled_at": ended if status == "cancelled" else None,
        "request_counts": {"total": total, "completed": counts.get("succeeded", 0),
                           "failed": failed},
        "metadata": metadata,
    }


def _unix(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


# -- an OpenAI batch on Bedrock batch inference -----------------------------------------------
_JOB_STATUS = {"Submitted": "in_progress", "Validating": "validating", "Scheduled": "in_progress",
               "InProgress": "in_progress", "Stopping": "cancelling", "Completed": "completed",
               "PartiallyCompleted": "completed", "Failed": "failed", "Stopped": "cancelled",
               "Expired": "expired"}


def to_bedrock(items: list[dict[str, Any]], deployment: Deployment, family: BatchFamily,
               cap: int | None) -> list[dict[str, Any]]:
    """Each line as a batch inference record: ``family``'s InvokeModel body (the model is the
    job's, not the body's). Record ids are the lines' numbers (Bedrock wants 11 characters);
    the custom ids are kept by polyroute in the same order."""
    records = []
    for number, request in enumerate(_chat_requests(items, cap, "Bedrock batch inference"),
                                     1):
        try:
            body = family.record(request, deployment)
        except GatewayError as exc:  # what the family's body cannot carry
            raise InvalidRequest(f"line {number} of the batch file: {exc.message}",
                                 param="file") from None
        records.append({"recordId": record_id(number), "modelInput": body})
    return records


def record_id(number: int) -> str:
    return f"R{number:010d}"


def bedrock_results(content: bytes, custom_ids: list[str], deployment: Deployment,
                    family: BatchFamily) -> tuple[list[bytes], list[bytes], Usage, int]:
    """A job's ``.out`` file (``{"recordId", "modelOutput"}`` or ``"error"``) as OpenAI's
    output and error lines, the summed usage of the answered records and how many there were.
    A record whose output is not its family's shape is an error line, not a lost line."""
    by_record = {record_id(n): custom_id for n, custom_id in enumerate(custom_ids, 1)}
    outputs: list[bytes] = []
    errors: list[bytes] = []
    usages: list[Usage] = []
    now = int(time.time())
    for line in content.splitlines():
        if not line.strip():
            continue
        item = _decode(line)
        record = str(item.get("recordId"))
        custom_id = by_record.get(record, item.get("recordId"))
        head = {"id": f"batch_req_{custom_id}", "custom_id": custom_id}
        output = item.get("modelOutput")
        message = None
        if isinstance(output, dict):
            try:
                answer = family.answer(output, record, deployment.name, now)
            except GatewayError as exc:
                message = exc.message
            else:
                answer.model = answer.model or deployment.model
                usages.append(answer.usage or Usage())
                outputs.append(_encode({**head, "response": {
                    "status_code": 200, "request_id": answer.id, "body": completion(answer)},
                    "error": None}))
                continue
        if message is None:
            error = item.get("error") or {}
            message = error.get("errorMessage") if isinstance(error, dict) else str(error)
        errors.append(_encode({**head, "response": {
            "status_code": 400, "request_id": None, "body": {"error": {
                "message": message or "The record failed.", "type": "invalid_request_error",
                "param": None, "code": None}}}, "error": None}))
    return outputs, errors, summed(usages), len(usages)


def summed(usages: list[Usage]) -> Usage:
    prompt = sum(u.prompt_tokens for u in usages)
    completion_ = sum(u.completion_tokens for u in usages)
    cached = sum(u.cached_tokens for u in usages)
    written = sum(u.cache_creation_tokens for u in usages)
    reasoning = sum(u.reasoning_tokens for u in usages)
    return Usage(prompt_tokens=prompt, completion_tokens=completion_,
                 total_tokens=prompt + completion_,
                 prompt_tokens_details=PromptTokensDetails(
                     cached_tokens=cached, cache_creation_tokens=written or None)
                 if cached or written else None,
                 completion_tokens_details=CompletionTokensDetails(reasoning_tokens=reasoning)
                 if reasoning else None)


def bedrock_batch(oid: str, job: dict[str, Any], input_file_id: str, metadata: Any,
                  lines: int) -> dict[str, Any]:
    """A batch inference job as OpenAI's batch object (files not yet named)."""
    status = _JOB_STATUS.get(str(job.get("status")), "in_progress")
    created = _unix(job.get("submitTime")) or int(time.time())
    ended = _unix(job.get("endTime"))
    failed = job.get("errorRecordCount") or 0
    completed = job.get("successRecordCount") or 0
    return {
        "id": oid, "object": "batch", "endpoint": "/v1/chat/completions",
        "errors": None if status != "failed" else {"object": "list", "data": [{
            "code": "batch_failed", "message": job.get("message") or "The job failed.",
            "param": None, "line": None}]},
        "input_file_id": input_file_id, "completion_window": "24h", "status": status,
        "output_file_id": None, "error_file_id": None, "created_at": created,
        "in_progress_at": created, "expires_at": _unix(job.get("jobExpirationTime")),
        "finalizing_at": ended, "completed_at": ended if status == "completed" else None,
        "failed_at": ended if status == "failed" else None,
        "expired_at": ended if status == "expired" else None,
        "cancelling_at": None, "cancelled_at": ended if status == "cancelled" else None,
        "request_counts": {"total": job.get("totalRecordCount") or lines,
                           "completed": completed, "failed": failed},
        "metadata": metadata,
    }
