"""OpenAI's Files and Batch APIs, as far as batches need them:

    POST /v1/files (multipart: file, purpose)   GET /v1/files   GET|DELETE /v1/files/{id}
    GET /v1/files/{id}/content
    POST /v1/batches   GET /v1/batches   GET /v1/batches/{id}   POST /v1/batches/{id}/cancel

and Azure's forms of the same (``/openai/files?api-version=…``, ``/openai/v1/files`` …).

A batch is ``in_progress`` for ``settings.batch_delay_ms`` after it was created (or its
``metadata.sim_delay_ms``), then
``completed``: every line answered as ``/v1/chat/completions`` would have answered it, in
OpenAI's output-file format (one ``{"id", "custom_id", "response": {"status_code",
"request_id", "body"}, "error"}`` line per request), with the summed usage on the batch. A
cancelled batch is ``cancelling``, then ``cancelled``. A line the chat endpoint would refuse
goes to the error file with the error it would have answered, and so does a line the
simulator's faults hit (a ``@fault`` suffix on its model, or a server-side rule: rate limits,
server errors …)."""

from __future__ import annotations

import time
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import msgspec
from aiohttp import web

from polyroute.sim import errors
from polyroute.sim.batches_store import SimBatch, SimFile
from polyroute.sim.chat import completion_body
from polyroute.sim.fault_responses import fault_error
from polyroute.sim.faults import FaultSpecError, split_model_fault
from polyroute.sim.replies import build_reply, prompt_tokens
from polyroute.sim.request_schema import decode_chat_request
from polyroute.sim.state import SimState, get_state

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_ENDPOINTS = ("/v1/chat/completions", "/chat/completions")  # Azure names it without /v1
_WINDOW_S = 24 * 3600


def add_batch_routes(app: web.Application, prefix: str) -> None:
    """``prefix``: ``/v1`` (OpenAI), ``/openai`` or ``/openai/v1`` (Azure)."""
    app.router.add_post(f"{prefix}/files", upload_file)
    app.router.add_get(f"{prefix}/files", list_files)
    app.router.add_get(f"{prefix}/files/{{file_id}}", retrieve_file)
    app.router.add_delete(f"{prefix}/files/{{file_id}}", delete_file)
    app.router.add_get(f"{prefix}/files/{{file_id}}/content", file_content)
    app.router.add_post(f"{prefix}/batches", create_batch)
    app.router.add_get(f"{prefix}/batches", list_batches)
    app.router.add_get(f"{prefix}/batches/{{batch_id}}", retrieve_batch)
    app.router.add_post(f"{prefix}/batches/{{batch_id}}/cancel", cancel_batch)


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_encode(obj), content_type="application/json")


def _file_object(file_id: str, filename: str, purpose: str, size: int) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "bytes": size, "created_at": int(time.time()),
            "filename": filename, "purpose": purpose, "status": "processed",
            "expires_at": None, "status_details": None}


async def upload_file(request: web.Request) -> web.Response:
    state = get_state(request)
    if not request.content_type.startswith("multipart/form-data"):
        raise errors.ApiError(400, "Expected a multipart/form-data body", param="file")
    # The request recorder has read the body already: parse it from the bytes.
    fields = _form(request.headers["Content-Type"], await request.read())
    purpose = fields.get("purpose")
    upload = fields.get("file")
    if purpose is None or not purpose[1]:
        raise errors.missing_parameter("purpose")
    if upload is None or upload[0] is None:
        raise errors.missing_parameter("file")
    filename, content = upload
    file_id = f"file-{state.ids.item_id('file')[5:29]}"
    obj = _file_object(file_id, filename or "upload", purpose[1].decode(), len(content))
    state.batches.files[file_id] = SimFile(obj, content)
    return _json(obj)


def _form(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """A multipart/form-data body's fields: name → (filename, bytes)."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = (part.get_filename(), payload)
    return fields


def _file(state: SimState, file_id: str) -> SimFile:
    found = state.batches.files.get(file_id)
    if found is None:
        raise errors.ApiError(404, f"No such File object: {file_id}", param="id",
                              code="file_not_found")
    return found


async def list_files(request: web.Request) -> web.Response:
    files = [f.obj for f in get_state(request).batches.files.values()]
    return _json({"object": "list", "data": files, "has_more": False,
                  "first_id": files[0]["id"] if files else None,
                  "last_id": files[-1]["id"] if files else None})


async def retrieve_file(request: web.Request) -> web.Response:
    return _json(_file(get_state(request), request.match_info["file_id"]).obj)


async def delete_file(request: web.Request) -> web.Response:
    state = get_state(request)
    file_id = request.match_info["file_id"]
    _file(state, file_id)
    del state.batches.files[file_id]
    return _json({"id": file_id, "object": "file", "deleted": True})


async def file_content(request: web.Request) -> web.Response:
    found = _file(get_state(request), request.match_info["file_id"])
    return web.Response(body=found.content, content_type="application/octet-stream")


async def create_batch(request: web.Request) -> web.Response:
    state = get_state(request)
    try:
        body = _decode(await request.read())
    except msgspec.DecodeError:
        raise errors.invalid_json() from None
    for name in ("input_file_id", "endpoint", "completion_window"):
        if not isinstance(body.get(name), str):
            raise errors.missing_parameter(name)
    if body["endpoint"] not in _ENDPOINTS:
        raise errors.ApiError(400, f"Invalid value for 'endpoint': {body['endpoint']}",
                              param="endpoint")
    source = _file(state, body["input_file_id"])
    if source.obj["purpose"] != "batch":
        raise errors.ApiError(400, "The input file's purpose must be 'batch'",
                              param="input_file_id")
    lines = [line for line in source.content.splitlines() if line.strip()]
    now = int(time.time())
    batch_id = f"batch_{state.ids.item_id('batch')[6:30]}"
    obj: dict[str, Any] = {
        "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
        "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
        "status": "in_progress", "output_file_id": None, "error_file_id": None,
        "created_at": now, "in_progress_at": now, "expires_at": now + _WINDOW_S,
        "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
        "cancelling_at": None, "cancelled_at": None,
        "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
        "metadata": body.get("metadata"), "model": None, "usage": None,
    }
    metadata = body.get("metadata") or {}
    # A batch of its own pace: metadata {"sim_delay_ms": "…"} (tests of cancellation).
    delay = float(metadata.get("sim_delay_ms", state.settings.batch_delay_ms)) / 1000
    state.batches.batches[batch_id] = SimBatch(obj, time.time() + delay)
    return _json(obj)


def _batch(state: SimState, batch_id: str) -> dict[str, Any]:
    found = state.batches.batches.get(batch_id)
    if found is None:
        raise errors.ApiError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
    _advance(state, found)
    return found.obj


def _advance(state: SimState, batch: SimBatch) -> None:
    """Finish a batch whose time has come (or a cancellation asked for)."""
    obj = batch.obj
    if obj["status"] == "cancelling":
        obj["status"], obj["cancelled_at"] = "cancelled", int(time.time())
        return
    if obj["status"] != "in_progress" or time.time() < batch.ready_at:
        return
    lines = [line for line in state.batches.files[obj["input_file_id"]].content.splitlines()
             if line.strip()]
    outputs: list[bytes] = []
    failures: list[bytes] = []
    totals = {"input_tokens": 0, "output_tokens": 0}
    for line in lines:
        answer, usage, ok = _answer(state, line)
        (outputs if ok else failures).append(_encode(answer))
        totals["input_tokens"] += usage[0]
        totals["output_tokens"] += usage[1]
    now = int(time.time())
    if outputs:
        obj["output_file_id"] = _output_file(state, outputs, "batch_output.jsonl")
    if failures:
        obj["error_file_id"] = _output_file(state, failures, "batch_errors.jsonl")
    obj.update(status="completed", finalizing_at=now, completed_at=now,
               request_counts={"total": len(lines), "completed": len(outputs),
                               "failed": len(failures)},
               usage={"input_tokens": totals["input_tokens"],
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": totals["output_tokens"],
                      "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": totals["input_tokens"] + totals["output_tokens"]})


def _output_file(state: SimState, lines: list[bytes], name: str) -> str:
    content = b"\n".join(lines) + b"\n"
    file_id = f"file-{state.ids.item_id('file')[5:29]}"
    state.batches.files[file_id] = SimFile(
        _file_object(file_id, name, "batch_output", len(content)), content)
    return file_id


def _answer(state: SimState, line: bytes) -> tuple[dict[str, Any], tuple[int, int], bool]:
    """One output line for one input line, its (input, output) tokens, and whether it went
    well (else it belongs in the error file)."""
    request_id = state.ids.request_id()
    custom_id = None
    try:
        item = _decode(line)
        custom_id = item.get("custom_id")
        chat = decode_chat_request(_encode(item.get("body")))
    except (msgspec.DecodeError, AttributeError):
        failed = _failed(state, custom_id, "invalid_json", "The line is not a JSON object")
        return failed, (0, 0), False
    except errors.ApiError as exc:  # what the chat endpoint would have answered
        return {"id": state.ids.item_id("batch_req"), "custom_id": custom_id,
                "response": {"status_code": exc.status, "request_id": request_id,
                             "body": msgspec.json.decode(exc.body())},
                "error": None}, (0, 0), False
    prompt = prompt_tokens(chat)
    try:  # the simulator's faults, per line: a '@fault' suffix or a server-side rule
        model, fault = split_model_fault(chat.model)
    except FaultSpecError as exc:
        return _failed(state, custom_id, "invalid_fault", str(exc)), (0, 0), False
    fault = fault or state.rules.pick(model)
    error = fault_error(fault, model=model, prompt_tokens=prompt, param="messages") \
        if fault is not None else None
    if error is not None:
        state.stats.record_selection(model, fault)
        return {"id": state.ids.item_id("batch_req"), "custom_id": custom_id,
                "response": {"status_code": error.status, "request_id": request_id,
                             "body": msgspec.json.decode(error.body())},
                "error": None}, (0, 0), False
    settings = state.settings
    replies = [build_reply(chat, model, default_text=settings.text,
                           chunk_tokens=settings.chunk_tokens, new_call_id=state.ids.tool_call_id)
               for _ in range(chat.choice_count)]
    body = completion_body(state.ids.completion_id(), int(time.time()), model, replies, prompt)
    output = sum(reply.completion_tokens for reply in replies)
    return {"id": state.ids.item_id("batch_req"), "custom_id": custom_id,
            "response": {"status_code": 200, "request_id": request_id,
                         "body": msgspec.json.decode(body)},
            "error": None}, (prompt, output), True


def _failed(state: SimState, custom_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": state.ids.item_id("batch_req"), "custom_id": custom_id, "response": None,
            "error": {"code": code, "message": message}}


async def list_batches(request: web.Request) -> web.Response:
    state = get_state(request)
    data = [_batch(state, batch_id) for batch_id in list(state.batches.batches)]
    return _json({"object": "list", "data": data, "has_more": False,
                  "first_id": data[0]["id"] if data else None,
                  "last_id": data[-1]["id"] if data else None})


async def retrieve_batch(request: web.Request) -> web.Response:
    return _json(_batch(get_state(request), request.match_info["batch_id"]))


async def cancel_batch(request: web.Request) -> web.Response:
    state = get_state(request)
    obj = _batch(state, request.match_info["batch_id"])
    if obj["status"] in ("validating", "in_progress"):
        obj.update(status="cancelling", cancelling_at=int(time.time()))
    return _json(obj)
