"""``POST /v1beta/models/{model}:{method}`` (generateContent, streamGenerateContent,
batchEmbedContents, countTokens) and ``GET /v1beta/models[/{model}]``. ``generateContent``
also answers image models (IMAGE output, from a prompt or input images), TTS models (AUDIO
output) and audio heard in ``inlineData`` (:mod:`.media`)."""

from __future__ import annotations

from aiohttp import web

from polyroute.sim import errors as openai_errors
from polyroute.sim.body_writer import send_json_body
from polyroute.sim.embeddings import embedding_vector
from polyroute.sim.fault_responses import fault_response
from polyroute.sim.fault_selection import select_fault
from polyroute.sim.faults import Fault, FaultName
from polyroute.sim.gemini.errors import GeminiError, invalid, not_found
from polyroute.sim.gemini.faults import fault_error
from polyroute.sim.gemini.media import (
    heard,
    media_usage_details,
    speaks,
    speech_body,
    transcript,
)
from polyroute.sim.gemini.reply import PromptUsage, build_answer, prompt_usage
from polyroute.sim.gemini.request import decode_batch_embed, decode_generate
from polyroute.sim.gemini.response import (
    ENCODER,
    answer_parts,
    blocked_body,
    candidate,
    embeddings_body,
    response_body,
    usage_metadata,
)
from polyroute.sim.gemini.state import get_gemini_state
from polyroute.sim.gemini.stream import stream_response
from polyroute.sim.media import TINY_PNG
from polyroute.sim.state import get_state

DEFAULT_EMBEDDING_DIMENSIONS = 3072  # gemini-embedding-001
_CONNECTION_FAULTS = frozenset({FaultName.RESET_BEFORE_HEADERS, FaultName.NO_RESPONSE})
_HEADERS = {"server": "scaffolding on HTTPServer2", "x-content-type-options": "nosniff"}


async def model_method(request: web.Request, target: str) -> web.StreamResponse:
    model, _, method = target.rpartition(":")
    if method == "generateContent":
        return await _generate(request, model, stream=False)
    if method == "streamGenerateContent":
        if request.query.get("alt") != "sse":
            raise invalid("The simulator streams only server-sent events: add ?alt=sse.")
        return await _generate(request, model, stream=True)
    if method == "batchEmbedContents":
        return await _embed(request, model)
    if method == "countTokens":
        body = decode_generate(await request.read())
        prompt = prompt_usage(body, model, get_gemini_state(request))
        return web.Response(body=ENCODER.encode({"totalTokens": prompt.tokens}),
                            content_type="application/json")
    raise not_found(f"Method {method or target} not found.")


async def _select(request: web.Request, model: str) -> tuple[str, Fault | None]:
    state = get_state(request)
    try:
        chosen, fault = select_fault(request, state, model)
    except openai_errors.ApiError as exc:
        raise invalid(exc.message) from None
    state.stats.record_selection(chosen, fault)
    return chosen, fault


async def _early(request: web.Request, fault: Fault | None,
                 prompt_tokens: int) -> web.StreamResponse | None:
    """The connection faults, and error statuses; None to answer normally."""
    if fault is None:
        return None
    if fault.name in _CONNECTION_FAULTS:
        return await fault_response(request, fault, model="", prompt_tokens=0, param="contents")
    if fault.name is FaultName.STREAM_ERROR and request.query.get("alt") == "sse":
        return None  # an in-stream error event
    error = fault_error(fault, prompt_tokens=prompt_tokens)
    if error is not None:
        raise error
    return None


async def _generate(request: web.Request, requested: str, *, stream: bool) -> web.StreamResponse:
    state, gemini = get_state(request), get_gemini_state(request)
    settings = state.settings
    body = decode_generate(await request.read())
    # The answer is built before a fault is picked, so an invalid request does not use up a
    # server-side rule's `times`.
    model = requested.partition("@")[0]
    tts = speaks(body, model)
    clips = heard(body)
    answer = transcript(body, clips) if clips and not tts else build_answer(
        body, model, gemini, default_text=settings.text, chunk_tokens=settings.chunk_tokens)
    model, fault = await _select(request, requested)
    prompt = prompt_usage(body, model, gemini)
    early = await _early(request, fault, prompt.tokens)
    if early is not None:
        return early
    response_id = gemini.response_id()
    blocked = fault is not None and fault.name is FaultName.CONTENT_POLICY_VIOLATION
    candidates = body.config.candidate_count or 1
    if not stream and not blocked and "IMAGE" in (body.config.response_modalities or ()) \
            and "image" in model:
        return await send_json_body(request, image_body(prompt, model, response_id), fault,
                                    state.stats, _HEADERS)
    if not stream and not blocked and tts:
        return await send_json_body(request, speech_body(body, prompt, model, response_id),
                                    fault, state.stats, _HEADERS)
    if stream:
        tps = settings.tokens_per_second
        return await stream_response(
            request, first=blocked_body(prompt, model, response_id) if blocked else None,
            answer=None if blocked else answer, prompt=prompt, model=model,
            response_id=response_id, candidates=candidates, fault=fault,
            seconds_per_chunk=max(1, settings.chunk_tokens) / tps if tps > 0 else 0.0,
            stats=state.stats, headers=_HEADERS)
    if blocked:
        payload = blocked_body(prompt, model, response_id)
    else:
        parts = answer_parts(answer)
        usage = usage_metadata(prompt, answer)
        if clips:
            usage["promptTokensDetails"] = media_usage_details(body, prompt)
        payload = response_body(
            [candidate(i, parts, answer.finish_reason) for i in range(candidates)],
            usage, model, response_id)
    return await send_json_body(request, payload, fault, state.stats, _HEADERS)


async def _embed(request: web.Request, requested: str) -> web.StreamResponse:
    state = get_state(request)
    body = decode_batch_embed(await request.read())
    wanted = f"models/{requested}"
    vectors = []
    for i, one in enumerate(body.requests):
        if one.model != wanted:
            raise invalid(f"* BatchEmbedContentsRequest.requests[{i}].model: the model of each "
                          f"request must be the batch's ({wanted}), not {one.model!r}.\n")
        text = one.content.text()
        dimensions = one.output_dimensionality or DEFAULT_EMBEDDING_DIMENSIONS
        vectors.append(embedding_vector(text, dimensions))
    _, fault = await _select(request, requested)
    early = await _early(request, fault, 0)
    if early is not None:
        return early
    return await send_json_body(request, embeddings_body(vectors), fault, state.stats, _HEADERS)


IMAGE_TOKENS = 1290
"""What Gemini's image models bill one 1024×1024 image as (output tokens)."""


def image_body(prompt: PromptUsage, model: str, response_id: str) -> bytes:
    """An image model's answer to ``responseModalities: ["IMAGE"]``: one ``inlineData`` part,
    a 1×1 PNG, billed as ``IMAGE_TOKENS`` output tokens of the IMAGE modality."""
    usage = {"promptTokenCount": prompt.tokens, "candidatesTokenCount": IMAGE_TOKENS,
             "totalTokenCount": prompt.tokens + IMAGE_TOKENS,
             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt.tokens}],
             "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": IMAGE_TOKENS}]}
    part = {"inlineData": {"mimeType": "image/png", "data": TINY_PNG}}
    return response_body([candidate(0, [part], "STOP")], usage, model, response_id)


def _model_card(model: str) -> dict[str, object]:
    embeds = "embedding" in model
    return {
        "name": f"models/{model}", "version": "001", "displayName": model,
        "inputTokenLimit": 2048 if embeds else 1048576,
        "outputTokenLimit": 1 if embeds else 65536,
        "supportedGenerationMethods": (["embedContent", "batchEmbedContents"] if embeds
                                       else ["generateContent", "countTokens"]),
    }


async def list_models(request: web.Request) -> web.Response:
    models = get_state(request).settings.models
    return web.Response(body=ENCODER.encode({"models": [_model_card(m) for m in models]}),
                        content_type="application/json")


async def get_model(request: web.Request, target: str) -> web.Response:
    model = target.removeprefix("models/")
    if model not in get_state(request).settings.models:
        raise GeminiError(404, f"models/{model} is not found for API version v1beta, or is not "
                          "supported for generateContent.", "NOT_FOUND")
    return web.Response(body=ENCODER.encode(_model_card(model)),
                        content_type="application/json")
