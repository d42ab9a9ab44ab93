"""Anthropic's Message Batches API, simulated: ``POST /v1/messages/batches``, ``GET`` one or
all, ``POST …/{id}/cancel``, ``DELETE …/{id}``, ``GET …/{id}/results`` (JSONL). A batch is
``in_progress`` for ``settings.batch_delay_ms``, then ``ended``: each request answered as
``POST /v1/messages`` would have answered it (``succeeded``), or ``errored`` with the error
it would have got; a cancelled batch ends with its requests ``canceled``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from polyroute.sim.anthropic.errors import AnthropicError, invalid
from polyroute.sim.anthropic.reply import build_answer, prompt_usage
from polyroute.sim.anthropic.request import decode_messages_request
from polyroute.sim.anthropic.response import message_body
from polyroute.sim.anthropic.state import AnthropicState, get_anthropic_state
from polyroute.sim.batches_store import SimBatch
from polyroute.sim.state import SimState, get_state

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
BASE = "/v1/messages/batches"


def add_message_batch_routes(app: web.Application) -> None:
    app.router.add_post(BASE, create_batch)
    app.router.add_get(BASE, list_batches)
    app.router.add_get(BASE + "/{batch_id}", retrieve_batch)
    app.router.add_post(BASE + "/{batch_id}/cancel", cancel_batch)
    app.router.add_delete(BASE + "/{batch_id}", delete_batch)
    app.router.add_get(BASE + "/{batch_id}/results", batch_results)


def _time(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


def _json(obj: Any) -> web.Response:
    return web.Response(body=_encode(obj), content_type="application/json")


async def create_batch(request: web.Request) -> web.Response:
    state, anthropic = get_state(request), get_anthropic_state(request)
    try:
        body = _decode(await request.read())
    except msgspec.DecodeError:
        raise invalid("The request body is not valid JSON.") from None
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        raise invalid("requests: Field required")
    now = time.time()
    batch_id = f"msgbatch_{anthropic.message_id()[4:]}"
    obj: dict[str, Any] = {
        "id": batch_id, "type": "message_batch", "processing_status": "in_progress",
        "request_counts": {"processing": len(requests), "succeeded": 0, "errored": 0,
                           "canceled": 0, "expired": 0},
        "ended_at": None, "created_at": _time(now), "expires_at": _time(now + 86400),
        "archived_at": None, "cancel_initiated_at": None, "results_url": None,
    }
    batch = SimBatch(obj, now + state.settings.batch_delay_ms / 1000, requests)
    state.batches.message_batches[batch_id] = batch
    return _json(obj)


def _batch(request: web.Request) -> SimBatch:
    state = get_state(request)
    batch_id = request.match_info["batch_id"]
    found = state.batches.message_batches.get(batch_id)
    if found is None:
        raise AnthropicError(404, f"No batch with id {batch_id}", type="not_found_error")
    _advance(state, get_anthropic_state(request), found, request.url.origin())
    return found


def _advance(state: SimState, anthropic: AnthropicState, batch: SimBatch, origin: Any) -> None:
    obj = batch.obj
    cancelling = obj["processing_status"] == "canceling"
    if obj["processing_status"] == "ended" or (not cancelling and time.time() < batch.ready_at):
        return
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    lines = []
    for item in batch.requests:
        result = {"type": "canceled"} if cancelling else batch_result(state, anthropic, item)
        counts[result["type"]] += 1
        lines.append(_encode({"custom_id": item.get("custom_id"), "result": result}))
    batch.results = b"\n".join(lines) + b"\n"
    obj.update(processing_status="ended", ended_at=_time(time.time()), request_counts=counts,
               results_url=f"{origin}{BASE}/{obj['id']}/results")


def batch_result(state: SimState, anthropic: AnthropicState, item: Any) -> dict[str, Any]:
    settings = state.settings
    try:
        message = decode_messages_request(_encode(item.get("params")))
        answer = build_answer(message, message.model, anthropic, default_text=settings.text,
                              chunk_tokens=settings.chunk_tokens)
    except AnthropicError as exc:
        return {"type": "errored", "error": {"type": "error", "error": {
            "type": exc.type, "message": exc.message}}}
    body = message_body(anthropic.message_id(), message.model, answer,
                        prompt_usage(message, anthropic))
    return {"type": "succeeded", "message": msgspec.json.decode(body)}


async def list_batches(request: web.Request) -> web.Response:
    state = get_state(request)
    data = []
    for batch in list(state.batches.message_batches.values())[::-1]:
        _advance(state, get_anthropic_state(request), batch, request.url.origin())
        data.append(batch.obj)
    return _json({"data": data, "has_more": False,
                  "first_id": data[0]["id"] if data else None,
                  "last_id": data[-1]["id"] if data else None})


async def retrieve_batch(request: web.Request) -> web.Response:
    return _json(_batch(request).obj)


async def cancel_batch(request: web.Request) -> web.Response:
    batch = _batch(request)
    if batch.obj["processing_status"] == "in_progress":
        batch.obj.update(processing_status="canceling", cancel_initiated_at=_time(time.time()))
    return _json(batch.obj)


async def delete_batch(request: web.Request) -> web.Response:
    batch = _batch(request)
    if batch.obj["processing_status"] != "ended":
        raise invalid("Batches must be ended before they can be deleted.")
    del get_state(request).batches.message_batches[batch.obj["id"]]
    return _json({"id": batch.obj["id"], "type": "message_batch_deleted"})


async def batch_results(request: web.Request) -> web.Response:
    batch = _batch(request)
    if batch.obj["processing_status"] != "ended":
        raise invalid("Batch results are not available until processing ends.")
    return web.Response(body=batch.results, content_type="application/binary")
