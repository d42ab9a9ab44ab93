"""OpenAI's media endpoints, and Jina/Cohere rerank, with the chat endpoints' faults:

    POST /v1/images/generations, /v1/images/edits (multipart)
    POST /v1/audio/transcriptions, /v1/audio/translations (multipart), /v1/audio/speech
    POST /v1/moderations
    POST /v1/rerank (Jina's shape), /v2/rerank (Cohere's)

Uploads are read a piece at a time and never held whole: the simulator answers from their
size, a digest and (for PCM WAV) the duration in their header. Speech is streamed in pieces,
and a gpt-4o-transcribe transcript with ``stream=true`` as SSE events paced like a chat
stream, so ``stream_cut``, ``stream_stall`` and ``slow_first_token`` act on both as on a chat
stream.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from typing import Any

import msgspec
from aiohttp import BodyPartReader, web

from polyroute.sim import errors
from polyroute.sim.body_writer import send_json_body
from polyroute.sim.common_headers import openai_headers
from polyroute.sim.connection import close_connection
from polyroute.sim.fault_responses import fault_response
from polyroute.sim.fault_selection import select_fault
from polyroute.sim.faults import Fault, FaultName
from polyroute.sim.state import SimState, get_state
from polyroute.sim.tokens import count_tokens

_decoder = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode
PIECE = 64 * 1024
SPEECH_PIECE = 4096
"""Bytes of audio per write: a short text still streams in several pieces."""
MP3_BYTES_PER_S = 16_000
"""128 kbit/s: the duration the simulator gives an upload it cannot measure."""
TINY_PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005050201a5d6b5e00000000049454e44ae426082"
)).decode()
"""A 1×1 PNG: every generated image (its bytes do not matter to a gateway)."""
TOKEN_IMAGE_MODELS = ("gpt-image-1",)
"""Image models that answer with token usage (the rest are priced per image)."""
TOKEN_AUDIO_MODELS = ("gpt-4o-transcribe", "gpt-4o-mini-transcribe")
MODERATION_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual",
    "sexual/minors", "violence", "violence/graphic")
_FLAGGED_WORDS = {"kill": "violence", "hate": "hate", "attack": "violence"}
SPEECH_TYPES = {"mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac",
                "flac": "audio/flac", "wav": "audio/wav", "pcm": "audio/pcm"}


def add_media_routes(app: web.Application, prefix: str, *, openai_only: bool = False) -> None:
    """The endpoints under ``prefix``; ``openai_only``: without moderation and rerank (Azure
    has neither)."""
    for path, handler in (("/images/generations", image_generations),
                          ("/images/edits", image_edits),
                          ("/audio/transcriptions", transcriptions),
                          ("/audio/translations", translations),
                          ("/audio/speech", speech)):
        app.router.add_post(prefix + path, handler)
    if not openai_only:
        app.router.add_post(prefix + "/moderations", moderations)
        app.router.add_post(prefix + "/rerank", rerank)


# -- images -------------------------------------------------------------------------------

async def image_generations(request: web.Request) -> web.StreamResponse:
    body = _json_object(await request.read())
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise errors.ApiError(400, "Missing required parameter: 'prompt'.", param="prompt")
    model = _str(body.get("model"), "model") or "dall-e-2"
    return await _images(request, model, prompt, body, fields=None)


async def image_edits(request: web.Request) -> web.StreamResponse:
    fields, files = await _read_form(request)
    if not any(f["name"] in ("image", "image[]") for f in files):
        raise errors.ApiError(400, "Missing required parameter: 'image'.", param="image")
    prompt = fields.get("prompt")
    if not prompt:
        raise errors.ApiError(400, "Missing required parameter: 'prompt'.", param="prompt")
    return await _images(request, fields.get("model") or "dall-e-2", prompt, dict(fields),
                         fields=fields)


async def _images(request: web.Request, requested: str, prompt: str, body: dict[str, Any],
                  fields: dict[str, str] | None) -> web.StreamResponse:
    state = get_state(request)
    n = body.get("n") or 1
    if isinstance(n, str):
        n = int(n) if n.isdigit() else 0
    if not isinstance(n, int) or not 1 <= n <= 10:
        raise errors.ApiError(400, "Invalid 'n': must be between 1 and 10.", param="n")
    model, fault = select_fault(request, state, requested)
    state.stats.record_selection(model, fault)
    early = await _fault(request, fault, model, count_tokens(prompt), "prompt")
    if early is not None:
        return early
    as_url = body.get("response_format") == "url" and not model.startswith("gpt-image")
    item: dict[str, Any] = ({"url": f"https://sim.polyroute.invalid/images/{state.ids.request_id()}.png"}
                            if as_url else {"b64_json": TINY_PNG})
    if model == "dall-e-3":
        item["revised_prompt"] = prompt
    answer: dict[str, Any] = {"created": int(time.time()), "data": [item] * n}
    if model.startswith(TOKEN_IMAGE_MODELS):
        text = count_tokens(prompt)
        images = 0 if fields is None else 323  # an input image's tokens (low fidelity)
        output = 272 * n  # a 1024×1024 low-quality image
        answer["usage"] = {
            "input_tokens": text + images, "output_tokens": output,
            "total_tokens": text + images + output,
            "input_tokens_details": {"text_tokens": text, "image_tokens": images}}
        answer["size"] = body.get("size") or "1024x1024"
        answer["quality"] = body.get("quality") or "low"
        answer["output_format"] = "png"
    return await send_json_body(request, _encode(answer), fault, state.stats,
                                openai_headers(state, model))


# -- audio --------------------------------------------------------------------------------

async def transcriptions(request: web.Request) -> web.StreamResponse:
    return await _transcribe(request, "transcribe")


async def translations(request: web.Request) -> web.StreamResponse:
    return await _transcribe(request, "translate")


async def _transcribe(request: web.Request, task: str) -> web.StreamResponse:
    state = get_state(request)
    fields, files = await _read_form(request)
    audio = next((f for f in files if f["name"] == "file"), None)
    if audio is None:
        raise errors.ApiError(400, "Missing required parameter: 'file'.", param="file")
    requested = fields.get("model")
    if not requested:
        raise errors.ApiError(400, "Missing required parameter: 'model'.", param="model")
    model, fault = select_fault(request, state, requested)
    state.stats.record_selection(model, fault)
    early = await _fault(request, fault, model, 0, "file")
    if early is not None:
        return early
    seconds = round(audio["seconds"], 2)
    text = (f"Simulated {'transcript' if task == 'transcribe' else 'translation'} of "
            f"{audio['filename']}: {audio['size']} bytes, {seconds:g} seconds.")
    form = fields.get("response_format") or "json"
    headers = openai_headers(state, model)
    if fields.get("stream") == "true" and task == "transcribe" \
            and model.startswith(TOKEN_AUDIO_MODELS):  # whisper-1 ignores stream
        return await _transcript_events(request, text, seconds, fault, headers)
    if form in ("text", "srt", "vtt"):
        stamp = f"00:00:00,000 --> {_clock(seconds, ',')}"
        body = {"text": text + "\n",
                "srt": f"1\n{stamp}\n{text}\n\n",
                "vtt": f"WEBVTT\n\n00:00:00.000 --> {_clock(seconds, '.')}\n{text}\n\n"}[form]
        kind = {"text": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}[form]
        return web.Response(text=body, content_type=kind, headers=headers)
    if form not in ("json", "verbose_json"):
        raise errors.ApiError(400, f"Invalid value: '{form}'.", param="response_format",
                              code="invalid_value")
    answer: dict[str, Any] = {"text": text}
    if task == "translate":
        pass  # a translation says only its text (and, verbose, its duration)
    elif model.startswith(TOKEN_AUDIO_MODELS):
        answer["usage"] = _token_usage(text, seconds)
    else:
        answer["usage"] = {"type": "duration", "seconds": max(1, round(seconds))}
    if form == "verbose_json":
        verbose = {"language": fields.get("language") or "english", "duration": seconds,
                   "text": text,
                   "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": seconds,
                                 "text": text, "tokens": [50364], "temperature": 0.0,
                                 "avg_logprob": -0.2, "compression_ratio": 1.2,
                                 "no_speech_prob": 0.01}]}
        if "usage" in answer:
            verbose["usage"] = answer["usage"]
        answer = verbose
    return await send_json_body(request, _encode(answer), fault, state.stats, headers)


async def _transcript_events(request: web.Request, text: str, seconds: float,
                             fault: Fault | None, headers: dict[str, str]) -> web.StreamResponse:
    """gpt-4o-transcribe's ``stream: true``: a ``transcript.text.delta`` event a word, paced
    like a chat stream (``tokens_per_second``), then ``transcript.text.done`` with the usage.
    ``stream_cut``, ``stream_stall`` and ``slow_first_token`` act on it as on a chat stream."""
    settings = get_state(request).settings
    pause = max(1, settings.chunk_tokens) / settings.tokens_per_second \
        if settings.tokens_per_second > 0 else 0.0
    response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream"})
    events = [{"type": "transcript.text.delta", "delta": word}
              for word in re.findall(r"\S+\s*", text)]
    events.append({"type": "transcript.text.done", "text": text,
                   "usage": _token_usage(text, seconds)})
    return await _stream(request, response, fault,
                         [b"data: " + _encode(event) + b"\n\n" for event in events], pause)


def _token_usage(text: str, seconds: float) -> dict[str, Any]:
    """gpt-4o-transcribe's usage: the audio's tokens in, the transcript's out."""
    audio_tokens = max(1, round(seconds * 10))
    output = count_tokens(text)
    return {"type": "tokens", "input_tokens": audio_tokens,
            "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": 0},
            "output_tokens": output, "total_tokens": audio_tokens + output}


def _clock(seconds: float, comma: str) -> str:
    whole = int(seconds)
    millis = round((seconds - whole) * 1000)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}{comma}{millis:03d}"


async def speech(request: web.Request) -> web.StreamResponse:
    state = get_state(request)
    body = _json_object(await request.read())
    text = body.get("input")
    if not isinstance(text, str) or not text:
        raise errors.ApiError(400, "Missing required parameter: 'input'.", param="input")
    if len(text) > 4096:
        raise errors.ApiError(400, "Invalid 'input': string too long. Expected a string with "
                              "maximum length 4096.", param="input", code="string_above_max_length")
    if body.get("voice") is None:
        raise errors.ApiError(400, "Missing required parameter: 'voice'.", param="voice")
    requested = _str(body.get("model"), "model")
    if not requested:
        raise errors.ApiError(400, "Missing required parameter: 'model'.", param="model")
    form = body.get("response_format") or "mp3"
    if form not in SPEECH_TYPES:
        raise errors.ApiError(400, f"Invalid value: '{form}'.", param="response_format",
                              code="invalid_value")
    model, fault = select_fault(request, state, requested)
    state.stats.record_selection(model, fault)
    early = await _fault(request, fault, model, count_tokens(text), "input")
    if early is not None:
        return early
    audio = speech_audio(text)
    response = web.StreamResponse(headers=openai_headers(state, model))
    response.content_type = SPEECH_TYPES[form]
    return await _stream(request, response, fault, [audio[start:start + SPEECH_PIECE]
                                                    for start in range(0, len(audio),
                                                                       SPEECH_PIECE)])


async def _stream(request: web.Request, response: web.StreamResponse, fault: Fault | None,
                  pieces: list[bytes], pause_s: float = 0.0) -> web.StreamResponse:
    """``pieces`` written one at a time, ``pause_s`` apart, with the mid-stream faults:
    ``slow_first_token`` before the headers, ``stream_cut`` (and ``stream_stall``, which
    holds first) closing the connection after ``after_chunks`` pieces."""
    stats = get_state(request).stats
    if fault is not None and fault.name is FaultName.SLOW_FIRST_TOKEN:
        await asyncio.sleep(fault.param("delay_ms") / 1000)
    await response.prepare(request)
    stats.streams_started += 1
    cut = _cut_after(fault)
    for index, piece in enumerate(pieces):
        if cut is not None and index == cut:
            if fault is not None and fault.name is FaultName.STREAM_STALL:
                await asyncio.sleep(fault.param("hold_s"))
            stats.responses_cut_by_sim += 1
            close_connection(request)
            return response
        if index and pause_s:
            await asyncio.sleep(pause_s)
        await response.write(piece)
        await asyncio.sleep(0)  # a piece at a time, as a synthesiser yields them
    await response.write_eof()
    stats.streams_completed += 1
    return response


def speech_audio(text: str) -> bytes:
    """Deterministic "audio" for ``text``: an ID3 tag, then 60 ms of frames a character."""
    frames = hashlib.shake_256(text.encode()).digest(max(1, len(text)) * 960)
    return b"ID3\x04\x00\x00\x00\x00\x00\x00" + frames


def _cut_after(fault: Fault | None) -> int | None:
    if fault is None or fault.name not in (FaultName.STREAM_CUT, FaultName.STREAM_STALL):
        return None
    return fault.int_param("after_chunks")


# -- moderation and rerank -----------------------------------------------------------------

async def moderations(request: web.Request) -> web.StreamResponse:
    state = get_state(request)
    body = _json_object(await request.read())
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs:
        raise errors.ApiError(400, "Missing required parameter: 'input'.", param="input")
    model, fault = select_fault(request, state,
                                _str(body.get("model"), "model") or "omni-moderation-latest")
    state.stats.record_selection(model, fault)
    early = await _fault(request, fault, model, 0, "input")
    if early is not None:
        return early
    texts = [i if isinstance(i, str) else str(i.get("text", "")) if isinstance(i, dict) else ""
             for i in inputs]
    multimodal = not isinstance(raw, str) and any(isinstance(i, dict) for i in inputs)
    results = [_moderation(text) for text in (
        [" ".join(texts)] if multimodal else texts)]
    answer = {"id": f"modr-{state.ids.request_id()[4:]}", "model": model, "results": results}
    return await send_json_body(request, _encode(answer), fault, state.stats,
                                openai_headers(state, model))


def _moderation(text: str) -> dict[str, Any]:
    lowered = text.lower()
    hit = {category for word, category in _FLAGGED_WORDS.items() if word in lowered}
    return {
        "flagged": bool(hit),
        "categories": {c: c in hit for c in MODERATION_CATEGORIES},
        "category_scores": {c: 0.91 if c in hit else 0.0001 for c in MODERATION_CATEGORIES},
        "category_applied_input_types": {c: ["text"] for c in MODERATION_CATEGORIES},
    }


async def rerank(request: web.Request) -> web.StreamResponse:
    """Jina's ``/v1/rerank`` (usage in tokens) or Cohere's ``/v2/rerank`` (billed searches)."""
    state = get_state(request)
    body = _json_object(await request.read())
    query, documents = body.get("query"), body.get("documents")
    if not isinstance(query, str) or not query:
        raise errors.ApiError(400, "Missing required parameter: 'query'.", param="query")
    if not isinstance(documents, list) or not documents:
        raise errors.ApiError(400, "Missing required parameter: 'documents'.",
                              param="documents")
    requested = _str(body.get("model"), "model")
    if not requested:
        raise errors.ApiError(400, "Missing required parameter: 'model'.", param="model")
    model, fault = select_fault(request, state, requested)
    state.stats.record_selection(model, fault)
    texts = [d if isinstance(d, str) else str(d.get("text", "")) if isinstance(d, dict)
             else str(d) for d in documents]
    tokens = count_tokens(query) * len(texts) + sum(count_tokens(t) for t in texts)
    early = await _fault(request, fault, model, tokens, "documents")
    if early is not None:
        return early
    scored = sorted(((relevance(query, text), i) for i, text in enumerate(texts)),
                    key=lambda pair: (-pair[0], pair[1]))
    top_n = body.get("top_n")
    if isinstance(top_n, int) and top_n > 0:
        scored = scored[:top_n]
    cohere = request.path.startswith("/v2/")
    results = []
    for score, index in scored:
        result: dict[str, Any] = {"index": index, "relevance_score": score}
        if body.get("return_documents", not cohere):
            result["document"] = {"text": texts[index]}
        results.append(result)
    answer: dict[str, Any] = (
        {"id": state.ids.request_id()[4:], "results": results,
         "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}}
        if cohere else {"model": model, "usage": {"total_tokens": tokens}, "results": results})
    return await send_json_body(request, _encode(answer), fault, state.stats,
                                openai_headers(state, model))


def relevance(query: str, text: str) -> float:
    """The share of the query's words the text has, nudged by a digest to break ties."""
    words = set(re.findall(r"\w+", query.lower()))
    found = set(re.findall(r"\w+", text.lower()))
    share = len(words & found) / len(words) if words else 0.0
    digest = hashlib.blake2b(f"{query}\0{text}".encode(), digest_size=2).digest()
    nudge = int.from_bytes(digest, "little") / 2**16 / 100
    return round(min(1.0, share * 0.99 + nudge), 6)


# -- shared -------------------------------------------------------------------------------

async def _fault(request: web.Request, fault: Fault | None, model: str, tokens: int,
                 param: str) -> web.StreamResponse | None:
    if fault is None:
        return None
    return await fault_response(request, fault, model=model, prompt_tokens=tokens, param=param)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = _decoder.decode(body)
    except msgspec.DecodeError:
        raise errors.ApiError(400, "We could not parse the JSON body of your request.") from None
    if not isinstance(value, dict):
        raise errors.ApiError(400, "The request body must be a JSON object.")
    return value


def _str(value: Any, param: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise errors.ApiError(400, f"Invalid type for '{param}': expected a string.", param=param)


async def _read_form(request: web.Request) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The form's text fields and, for each file, its name, size, digest and duration, read
    a piece at a time. Recorded in the stats' last request (its body is not kept)."""
    if not request.content_type.startswith("multipart/form-data"):
        raise errors.ApiError(400, "This endpoint takes a multipart/form-data body.")
    fields: dict[str, str] = {}
    files: list[dict[str, Any]] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or not part.name:
            raise errors.ApiError(400, "Each form part must be a named field.")
        if part.filename is None:
            fields[part.name] = (await part.read()).decode()
            continue
        digest, size, head = hashlib.sha256(), 0, b""
        while piece := await part.read_chunk(PIECE):
            digest.update(piece)
            if len(head) < 64:
                head += piece[:64]
            size += len(piece)
        files.append({"name": part.name, "filename": part.filename, "size": size,
                      "content_type": part.headers.get("Content-Type"),
                      "sha256": digest.hexdigest(), "seconds": _seconds(head, size)})
    state: SimState = get_state(request)
    if state.stats.last_request is not None:
        state.stats.last_request["form"] = {"fields": fields, "files": files}
    return fields, files


def _seconds(head: bytes, size: int) -> float:
    """A PCM WAV's duration from its header (data bytes over byte rate); else 128 kbit/s."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE" and head[12:16] == b"fmt ":
        byte_rate = int.from_bytes(head[28:32], "little")
        if byte_rate:
            return max(0.0, (size - 44) / byte_rate)
    return size / MP3_BYTES_PER_S
