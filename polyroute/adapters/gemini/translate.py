"""Pure functions between the canonical model and Gemini's ``generateContent`` API. No I/O.

Translation must be idempotent: the engine may build the body again for another attempt, so
nothing here mutates the request.

    OpenAI                              Gemini
    system / developer messages     →   systemInstruction.parts
    user / assistant messages       →   contents[] with role user / model (same roles merged)
    image_url (data: URL)           →   inlineData {mimeType, data}
    image_url (http(s)/gs:// URL)   →   fileData {mimeType, fileUri}
    assistant tool_calls            →   functionCall {name, args} (+ thoughtSignature)
    tool message                    →   functionResponse {name, response} in a user turn
    tools / tool_choice             →   tools[].functionDeclarations / toolConfig
    response_format                 →   generationConfig.responseMimeType (+ responseJsonSchema)
    max_(completion_)tokens, stop,  →   generationConfig.maxOutputTokens, stopSequences,
    temperature, top_p, top_k, n,       temperature, topP, topK, candidateCount, seed,
    seed, presence/frequency_penalty    presencePenalty, frequencyPenalty
    reasoning_effort / thinking     →   generationConfig.thinkingConfig
"""

from __future__ import annotations

import base64
import mimetypes
import struct
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import msgspec

from polyroute.adapters import rejections
from polyroute.adapters.gemini.spec import SUPPORT
from polyroute.adapters.gemini.wire import (
    ANY_DECODER,
    EMBED_DECODER,
    ENCODER,
    MODEL_LIST_DECODER,
    RESPONSE_DECODER,
    Candidate,
    Part,
    Response,
    UsageMetadata,
)
from polyroute.adapters.parts import data_url
from polyroute.adapters.support import check_supported
from polyroute.errors import ContentFiltered, UpstreamProtocolError, UpstreamRejected
from polyroute.model.chat import (
    ChatRequest,
    ChatResponse,
    Choice,
    ContentPart,
    FunctionCall,
    Message,
    ToolCall,
)
from polyroute.model.embeddings import (
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
)
from polyroute.model.tools import Tool, ToolChoice
from polyroute.model.upstream import Quirks
from polyroute.model.usage import CompletionTokensDetails, PromptTokensDetails, Usage
from polyroute.nesting import too_deep

VENDOR = "Gemini"
API_VERSION = "v1beta"

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MODEL_ARMOR": "content_filter",
}
"""Anything else (``MALFORMED_FUNCTION_CALL``, ``OTHER`` …) has no OpenAI equivalent and is
passed on in lower case, so a client sees what happened instead of a false "stop"."""

SKIP_SIGNATURE = "skip_thought_signature_validator"
"""Google's documented stand-in for a function call that carries no thought signature (a
history that began on another vendor, or a client that dropped it): Gemini 3 refuses such a
call otherwise."""

# Google's table for its own OpenAI-compatible endpoint (thinking budgets in tokens).
_THINKING_BUDGET = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}


def unsupported(param: str, deployment: str, why: str = "") -> UpstreamRejected:
    return rejections.unsupported(VENDOR, param, deployment, why)


# -- URLs ------------------------------------------------------------------------------------


_COLLECTIONS = ("models/", "tunedModels/")


def model_path(base_url: str, model: str, deployment: str = "") -> str:
    """``{base}/v1beta/models/{model}``. The base is the API root, as in Google's SDKs and
    ``GOOGLE_GEMINI_BASE_URL``; a base that already ends in a version is kept as it is. A model
    id with a collection (``tunedModels/x``) is used as given.

    The model id may come from the client (``gemini/<any id>``) and the gateway's key goes with
    the request, so the id must name a model and nothing else on Google's host: one path
    segment after an optional collection, percent-encoded (``?``, ``#``, ``%`` and ``:`` lose
    their meaning), never ``.`` or ``..``. The result is already encoded: send it as
    ``URL(…, encoded=True)`` so that nothing normalises it again."""
    collection = next((c for c in _COLLECTIONS if model.startswith(c)), "models/")
    name = model[len(collection):] if model.startswith(collection) else model
    if not name or "/" in name or name in (".", "..") or not name.isprintable():
        raise UpstreamRejected(
            f"'{model[:200]}' is not a Gemini model id: one name (letters, digits, '-', '.'), "
            "optionally after models/ or tunedModels/.",
            param="model", code="invalid_model", deployment=deployment)
    return f"{versioned(base_url)}/{collection}{quote(name, safe='@')}"


def versioned(base_url: str) -> str:
    last = base_url.rsplit("/", 1)[-1]
    if last.startswith("v") and last[1:2].isdigit():
        return base_url
    return f"{base_url}/{API_VERSION}"


# -- request ---------------------------------------------------------------------------------


def chat_body(request: ChatRequest, quirks: Quirks, deployment: str) -> bytes:
    """The body of ``:generateContent`` / ``:streamGenerateContent`` for ``request``."""
    drop = quirks.drop_params
    check_supported(request, SUPPORT, drop, deployment)
    system, contents = _conversation(request.messages, deployment)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools and "tools" not in drop:
        body["tools"] = [{"functionDeclarations": [
            _function(tool, j, deployment) for j, tool in enumerate(request.tools)]}]
        config = _tool_config(request.tool_choice if "tool_choice" not in drop else None,
                              deployment)
        if config is not None:
            body["toolConfig"] = {"functionCallingConfig": config}
    generation = _generation_config(request, drop, deployment)
    if generation:
        body["generationConfig"] = generation
    return ENCODER.encode(body)


def _generation_config(
    request: ChatRequest, drop: frozenset[str], deployment: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    limit = request.max_completion_tokens or request.max_tokens
    if limit is not None and not {"max_tokens", "max_completion_tokens"} & drop:
        out["maxOutputTokens"] = limit
    numbers: tuple[tuple[str, str, float | None], ...] = (
        ("temperature", "temperature", request.temperature),
        ("top_p", "topP", request.top_p),
        ("top_k", "topK", request.top_k),
        ("seed", "seed", request.seed),
        ("presence_penalty", "presencePenalty", request.presence_penalty),
        ("frequency_penalty", "frequencyPenalty", request.frequency_penalty),
    )
    for name, wire, number in numbers:
        if number is not None and name not in drop:
            out[wire] = number
    if request.n is not None and request.n != 1 and "n" not in drop:
        out["candidateCount"] = request.n
    if request.stop and "stop" not in drop:
        out["stopSequences"] = [request.stop] if isinstance(request.stop, str) else request.stop
    fmt = request.response_format
    if fmt and "response_format" not in drop:
        if fmt.type == "json_object":
            out["responseMimeType"] = "application/json"
        elif fmt.schema is not None:
            # responseJsonSchema takes JSON Schema as it is; the older responseSchema takes
            # only an OpenAPI subset, which would drop keywords such as additionalProperties.
            out["responseMimeType"] = "application/json"
            out["responseJsonSchema"] = fmt.schema
        elif fmt.type != "text":
            raise unsupported("response_format", deployment,
                              f"type '{fmt.type}' has no equivalent; send json_object or a "
                              "json_schema with a schema")
    thinking = _thinking_config(request, drop, deployment)
    if thinking is not None:
        out["thinkingConfig"] = thinking
    return out


def _thinking_config(
    request: ChatRequest, drop: frozenset[str], deployment: str
) -> dict[str, Any] | None:
    thinking = request.thinking if "thinking" not in drop else None
    if isinstance(thinking, dict):
        if thinking.get("type") == "disabled":
            return {"thinkingBudget": 0}
        budget = thinking.get("budget_tokens")
        out: dict[str, Any] = {"includeThoughts": True}
        if isinstance(budget, int):
            out["thinkingBudget"] = budget
        return out
    effort = request.reasoning_effort if "reasoning_effort" not in drop else None
    if effort is None:
        return None
    if effort not in _THINKING_BUDGET:
        raise unsupported("reasoning_effort", deployment,
                          f"use one of {', '.join(_THINKING_BUDGET)}")
    return {"thinkingBudget": _THINKING_BUDGET[effort]}


def _conversation(
    messages: list[Message], deployment: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Gemini's ``systemInstruction`` parts and its ``contents``: system and developer messages
    are hoisted (in order), tool results become ``functionResponse`` parts of a user turn, and
    consecutive turns of one role are merged (parallel calls' results must share one turn)."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool-call id → function name: a functionResponse needs it
    for i, message in enumerate(messages):
        role, where = message.role, f"messages[{i}]"
        if role in ("system", "developer"):
            system += _parts(message.content, f"{where}.content", deployment, media=False)
            continue
        if role == "user":
            parts = _parts(message.content, f"{where}.content", deployment)
        elif role == "assistant":
            role, parts = "model", _model_parts(message, where, deployment, names)
        elif role == "tool":
            role, parts = "user", [_function_response(message, where, deployment, names)]
        else:
            raise unsupported(f"{where}.role", deployment,
                              f"role '{role}' has no equivalent (use 'tool' for tool results)")
        if not parts:
            continue  # Gemini refuses a turn without parts; an empty message says nothing
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"] += parts
        else:
            contents.append({"role": role, "parts": parts})
    return system, contents


def _parts(
    content: str | list[ContentPart] | None, where: str, deployment: str, *, media: bool = True
) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts = []
    for j, part in enumerate(content):
        out = _part(part, f"{where}[{j}]", deployment, media)
        if out is not None:
            parts.append(out)
    return parts


def _part(part: ContentPart, where: str, deployment: str, media: bool) -> dict[str, Any] | None:
    kind = part.type
    if kind in ("text", "refusal"):
        text = part.text if kind == "text" else part.refusal
        return {"text": text} if text else None
    if kind == "image_url" and media and part.image_url is not None:
        image = part.image_url
        return _media(image.url, f"{where}.image_url.url", deployment, image.data)
    if kind == "input_audio" and media:
        audio = part.input_audio or {}
        data, fmt = audio.get("data"), audio.get("format")
        if not isinstance(data, str) or not isinstance(fmt, str):
            raise unsupported(f"{where}.input_audio", deployment, "it needs data and format")
        return {"inlineData": {"mimeType": f"audio/{fmt}", "data": data}}
    if kind == "file" and media:
        data_url = (part.file or {}).get("file_data")
        if not isinstance(data_url, str):
            raise unsupported(f"{where}.file", deployment, "only inline files (file_data) can "
                              "be sent; uploaded file ids belong to OpenAI")
        return _media(data_url, f"{where}.file.file_data", deployment)
    raise unsupported(f"{where}.type", deployment,
                      f"content parts of type '{kind}' have no equivalent here")


def _media(url: str, where: str, deployment: str,
           split: tuple[str, str] | None = None) -> dict[str, Any]:
    if url.startswith("data:"):
        mime_type, data = data_url(VENDOR, url, where, deployment, split=split)
        return {"inlineData": {"mimeType": mime_type, "data": data}}
    if url.startswith(("http://", "https://", "gs://")):
        guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
        if guessed is None:
            raise unsupported(where, deployment, "Gemini needs the media type of a file URL "
                              "and it cannot be told from this one; send a data: URL")
        return {"fileData": {"mimeType": guessed, "fileUri": url}}
    raise unsupported(where, deployment, "expected a data:, http(s) or gs:// URL")




def _model_parts(
    message: Message, where: str, deployment: str, names: dict[str, str]
) -> list[dict[str, Any]]:
    parts = _parts(message.content, f"{where}.content", deployment, media=False)
    if message.refusal and not message.content:
        parts.append({"text": message.refusal})
    for k, call in enumerate(message.tool_calls or ()):
        function = call.function or FunctionCall()
        name = function.name or ""
        if call.id:
            names[call.id] = name
        part: dict[str, Any] = {"functionCall": {
            "name": name,
            "args": rejections.object_arguments(
                VENDOR, function.arguments, f"{where}.tool_calls[{k}].function.arguments",
                deployment)}}
        signature = thought_signature(call)
        if signature is None and k == 0:
            signature = SKIP_SIGNATURE  # only a turn's first call carries one
        if signature is not None:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def thought_signature(call: ToolCall) -> str | None:
    google = (call.extra_content or {}).get("google")
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def _function_response(
    message: Message, where: str, deployment: str, names: dict[str, str]
) -> dict[str, Any]:
    call_id = message.tool_call_id
    name = names.get(call_id or "") or message.name
    if not name:
        raise UpstreamRejected(
            f"Invalid '{where}.tool_call_id': {VENDOR} needs the name of the function a tool "
            "result answers, and no earlier assistant message has a tool call with this id.",
            param=f"{where}.tool_call_id", code="invalid_value", deployment=deployment)
    content = message.content
    if isinstance(content, list):
        for j, part in enumerate(content):
            if part.type != "text":
                raise unsupported(f"{where}.content[{j}].type", deployment,
                                  "tool results can only be text here")
        text = "".join(p.text or "" for p in content)
    else:
        text = content or ""
    # Gemini takes an object. A tool that answered with a JSON object is passed as it is;
    # anything else goes under "output", the key Google's documentation uses.
    try:
        is_object = text.lstrip().startswith("{") and too_deep(text) is None
        value = ANY_DECODER.decode(text) if is_object else None
    except (msgspec.DecodeError, RecursionError):
        value = None
    response = value if isinstance(value, dict) else {"output": text}
    return {"functionResponse": {"name": name, "response": response}}


def _function(tool: Tool, j: int, deployment: str) -> dict[str, Any]:
    function = tool.function
    if tool.type != "function" or function is None:
        raise unsupported(f"tools[{j}].type", deployment, "only function tools can be mapped")
    out: dict[str, Any] = {"name": function.name}
    if function.description:
        out["description"] = function.description
    if function.parameters is not None:
        # JSON Schema as it is: the older "parameters" takes only an OpenAPI subset.
        out["parametersJsonSchema"] = function.parameters
    return out


def _tool_config(choice: str | ToolChoice | None, deployment: str) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice in ("auto", "none"):
        return {"mode": str(choice).upper()}
    if choice == "required":
        return {"mode": "ANY"}
    if isinstance(choice, ToolChoice) and choice.forced is not None:
        return {"mode": "ANY", "allowedFunctionNames": [choice.forced]}
    raise unsupported("tool_choice", deployment,
                      "use 'auto', 'required', 'none' or a named function")


# -- response --------------------------------------------------------------------------------


def decode_response(body: bytes, deployment: str) -> Response:
    try:
        return RESPONSE_DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamProtocolError(f"unreadable response from the upstream: {exc}",
                                    deployment=deployment) from exc


def parse_response(
    body: bytes, model: str, deployment: str, created: int, call_id: Callable[[int], str]
) -> ChatResponse:
    """``call_id(n)`` names the n-th function call of the answer when Gemini gives it no id."""
    wire = decode_response(body, deployment)
    check_blocked(wire, deployment)
    choices = []
    calls_seen = 0
    for candidate in wire.candidates:
        message, calls_seen = candidate_message(candidate, calls_seen, call_id)
        finish = finish_reason(candidate.finish_reason, bool(message.tool_calls))
        choices.append(Choice(index=candidate.index, message=message, finish_reason=finish))
    if not choices:
        raise UpstreamProtocolError("the upstream answered without a candidate",
                                    deployment=deployment)
    return ChatResponse(
        id=wire.response_id or "", model=wire.model_version or model, created=created,
        choices=choices,
        usage=canonical_usage(wire.usage_metadata) if wire.usage_metadata else None)


def candidate_message(
    candidate: Candidate, calls_seen: int, call_id: Callable[[int], str]
) -> tuple[Message, int]:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    for part in candidate.content.parts if candidate.content else ():
        if part.function_call is not None:
            calls.append(tool_call(part, call_id(calls_seen)))
            calls_seen += 1
        elif part.text is not None:
            (thoughts if part.thought else texts).append(part.text)
    message = Message(
        role="assistant",
        content="".join(texts) if texts or not calls else None,
        tool_calls=calls or None,
        reasoning_content="".join(thoughts) or None,
    )
    return message, calls_seen


def tool_call(part: Part, fallback_id: str, index: int | None = None) -> ToolCall:
    call = part.function_call
    assert call is not None
    # Gemini's own JSON text of the arguments, exactly: OpenAI's arguments are a string.
    arguments = bytes(call.args).decode() if len(call.args) else "{}"
    extra = ({"google": {"thought_signature": part.thought_signature}}
             if part.thought_signature else None)
    return ToolCall(id=call.id or fallback_id, type="function", index=index,
                    function=FunctionCall(name=call.name, arguments=arguments),
                    extra_content=extra)


def check_blocked(wire: Response, deployment: str) -> None:
    """A prompt Gemini refused to answer at all comes as 200 with ``promptFeedback``."""
    feedback = wire.prompt_feedback
    if feedback is None or not feedback.block_reason or wire.candidates:
        return
    detail = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
    raise ContentFiltered(
        f"{VENDOR} blocked the prompt (blockReason {feedback.block_reason}){detail}",
        deployment=deployment, param="messages")


def finish_reason(reason: str | None, has_calls: bool) -> str | None:
    if reason is None or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if reason == "STOP" and has_calls:
        return "tool_calls"  # Gemini ends a turn of function calls with STOP
    return FINISH_REASONS.get(reason, reason.lower())


def canonical_usage(usage: UsageMetadata) -> Usage:
    """Gemini counts thoughts apart from the answer (``candidatesTokenCount``); OpenAI's
    ``completion_tokens`` includes reasoning, so the canonical count is the sum. Cached tokens
    are already part of ``promptTokenCount``, as in OpenAI's ``prompt_tokens``."""
    prompt = (usage.prompt_token_count or 0) + (usage.tool_use_prompt_token_count or 0)
    thoughts = usage.thoughts_token_count
    completion = (usage.candidates_token_count or 0) + (thoughts or 0)
    cached = usage.cached_content_token_count
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached) if cached else None,
        completion_tokens_details=(CompletionTokensDetails(reasoning_tokens=thoughts)
                                   if thoughts else None),
    )


# -- embeddings and models -------------------------------------------------------------------


def embeddings_body(request: EmbeddingRequest, model: str, quirks: Quirks,
                    deployment: str) -> bytes:
    inputs = [request.input] if isinstance(request.input, str) else request.input
    name = model if "/" in model else f"models/{model}"
    requests = []
    for i, text in enumerate(inputs):
        if not isinstance(text, str):
            raise unsupported(f"input[{i}]", deployment,
                              "it embeds text, not token arrays")
        one: dict[str, Any] = {"model": name, "content": {"parts": [{"text": text}]}}
        if request.dimensions is not None and "dimensions" not in quirks.drop_params:
            one["outputDimensionality"] = request.dimensions
        requests.append(one)
    return ENCODER.encode({"requests": requests})


def parse_embeddings(body: bytes, request: EmbeddingRequest, model: str,
                     deployment: str) -> EmbeddingResponse:
    try:
        wire = EMBED_DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamProtocolError(f"unreadable embeddings response: {exc}",
                                    deployment=deployment) from exc
    as_base64 = request.encoding_format == "base64"
    data = [Embedding(index=i, embedding=_base64_floats(e.values) if as_base64 else e.values)
            for i, e in enumerate(wire.embeddings)]
    # Gemini reports no token counts for embeddings, so there is no usage to give.
    return EmbeddingResponse(data=data, model=model)


def _base64_floats(values: list[float]) -> str:
    """OpenAI's base64 encoding: little-endian float32s."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def parse_model_list(body: bytes, deployment: str) -> tuple[list[str], str | None]:
    """The chat models of one page of ``GET /v1beta/models``, and the next page's token."""
    try:
        page = MODEL_LIST_DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamProtocolError(f"unreadable model list: {exc}",
                                    deployment=deployment) from exc
    ids = [m.name.removeprefix("models/") for m in page.models
           if not m.supported_generation_methods
           or {"generateContent", "embedContent"} & set(m.supported_generation_methods)]
    return ids, page.next_page_token or None
