"""``POST /model/{modelId}/converse`` and ``/converse-stream``; ``/invoke`` for Amazon's image
models (Nova Canvas, Titan Image Generator v2: generation and edits)."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from polyroute.sim import errors as openai_errors
from polyroute.sim.bedrock.canvas import images_asked
from polyroute.sim.bedrock.errors import validation
from polyroute.sim.bedrock.faults import fault_error
from polyroute.sim.bedrock.reply import build_answer, prompt_usage
from polyroute.sim.bedrock.request import decode_converse
from polyroute.sim.bedrock.response import converse_body, guardrail_answer
from polyroute.sim.bedrock.state import get_bedrock_state
from polyroute.sim.bedrock.stream import stream_converse
from polyroute.sim.body_writer import send_json_body
from polyroute.sim.fault_responses import fault_response
from polyroute.sim.fault_selection import select_fault
from polyroute.sim.faults import FaultName
from polyroute.sim.media import TINY_PNG, relevance
from polyroute.sim.state import get_state

_CONNECTION_FAULTS = frozenset({FaultName.RESET_BEFORE_HEADERS, FaultName.NO_RESPONSE})


async def converse(request: web.Request, model_id: str, *, stream: bool,
                   request_id: str) -> web.StreamResponse:
    state, bedrock = get_state(request), get_bedrock_state(request)
    settings = state.settings
    body = decode_converse(await request.read())
    # The answer is built before a fault is picked, so an invalid request does not use up a
    # server-side rule's `times`.
    answer = build_answer(body, model_id.partition("@")[0], bedrock, default_text=settings.text,
                          chunk_tokens=settings.chunk_tokens)
    try:
        model, fault = select_fault(request, state, model_id)
    except openai_errors.ApiError as exc:
        raise validation(exc.message) from None
    state.stats.record_selection(model, fault)
    if fault is not None:
        if fault.name in _CONNECTION_FAULTS:
            early = await fault_response(request, fault, model=model, prompt_tokens=0,
                                         param="messages")
            if early is not None:
                return early
        if not (stream and fault.name is FaultName.STREAM_ERROR):
            error = fault_error(fault)
            if error is not None:
                raise error
        if fault.name is FaultName.CONTENT_POLICY_VIOLATION:
            answer = guardrail_answer()
    prompt = prompt_usage(body, model, bedrock)
    headers = {"x-amzn-RequestId": request_id}
    if stream:
        tps = settings.tokens_per_second
        return await stream_converse(
            request, answer=answer, prompt=prompt, fault=fault,
            seconds_per_chunk=max(1, settings.chunk_tokens) / tps if tps > 0 else 0.0,
            stats=state.stats, state=bedrock, headers=headers)
    payload = converse_body(answer, prompt, latency_ms=1)
    state.stats.last_response = payload
    return await send_json_body(request, payload, fault, state.stats, headers)


async def invoke_image(request: web.Request, model_id: str, *,
                       request_id: str) -> web.StreamResponse:
    """``InvokeModel`` for an image model's task (TEXT_IMAGE, IMAGE_VARIATION, INPAINTING,
    OUTPAINTING, checked by :mod:`.canvas`): ``{"images": [base64 PNG, ...], "error": null}``;
    the content-policy fault answers as the models do, with no image and an ``error``."""
    state = get_state(request)
    try:
        body = msgspec.json.decode(await request.read())
    except msgspec.DecodeError:
        raise validation("Malformed input request, please reformat your input and try "
                         "again.") from None
    count = images_asked(body)
    try:
        model, fault = select_fault(request, state, model_id)
    except openai_errors.ApiError as exc:
        raise validation(exc.message) from None
    state.stats.record_selection(model, fault)
    answer: dict[str, object] = {"images": [TINY_PNG] * count, "error": None}
    if fault is not None:
        if fault.name in _CONNECTION_FAULTS:
            early = await fault_response(request, fault, model=model, prompt_tokens=0,
                                         param="textToImageParams")
            if early is not None:
                return early
        error = fault_error(fault)
        if error is not None:
            raise error
        if fault.name is FaultName.CONTENT_POLICY_VIOLATION:
            answer = {"images": [], "error": "This request has been blocked by our content "
                      "filters."}
    return await send_json_body(request, msgspec.json.encode(answer), fault, state.stats,
                                {"x-amzn-RequestId": request_id})


RERANK_PATH = "/rerank"
"""bedrock-agent-runtime's ``Rerank`` (another host in AWS; the same simulator here)."""


async def rerank(request: web.Request, *, request_id: str) -> web.StreamResponse:
    """``{"queries": [{"type": "TEXT", "textQuery": {"text"}}], "sources": [{"type": "INLINE",
    "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text"}}}], "rerankingConfiguration":
    {"type": "BEDROCK_RERANKING_MODEL", "bedrockRerankingConfiguration": {"numberOfResults",
    "modelConfiguration": {"modelArn"}}}}`` → ``{"results": [{"index", "relevanceScore"}]}``,
    best first, scored as the OpenAI-style rerank is (:func:`~polyroute.sim.media.relevance`)."""
    state = get_state(request)
    try:
        body = msgspec.json.decode(await request.read())
        query = body["queries"][0]["textQuery"]["text"]
        texts = [_source_text(s) for s in body["sources"]]
        config = body["rerankingConfiguration"]["bedrockRerankingConfiguration"]
        arn = config["modelConfiguration"]["modelArn"]
    except (msgspec.DecodeError, KeyError, IndexError, TypeError):
        raise validation("1 validation error detected: the request does not match the Rerank "
                         "API's shape") from None
    if not isinstance(arn, str) or ":foundation-model/" not in arn:
        raise validation(f"The provided model identifier is invalid: {arn}")
    try:
        model, fault = select_fault(request, state, arn.rpartition("/")[2])
    except openai_errors.ApiError as exc:
        raise validation(exc.message) from None
    state.stats.record_selection(model, fault)
    if fault is not None:
        if fault.name in _CONNECTION_FAULTS:
            early = await fault_response(request, fault, model=model, prompt_tokens=0,
                                         param="queries")
            if early is not None:
                return early
        error = fault_error(fault)
        if error is not None:
            raise error
    ranked = sorted(((relevance(str(query), text), i) for i, text in enumerate(texts)),
                    key=lambda pair: (-pair[0], pair[1]))
    count = config.get("numberOfResults")
    if isinstance(count, int) and count > 0:
        ranked = ranked[:count]
    answer = {"results": [{"index": i, "relevanceScore": score} for score, i in ranked]}
    return await send_json_body(request, msgspec.json.encode(answer), fault, state.stats,
                                {"x-amzn-RequestId": request_id})


def _source_text(source: dict[str, Any]) -> str:
    document = source["inlineDocumentSource"]
    if document.get("type") == "JSON":
        return msgspec.json.encode(document["jsonDocument"]).decode()
    return str(document["textDocument"]["text"])
