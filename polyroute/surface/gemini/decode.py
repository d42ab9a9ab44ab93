"""Client bytes in Gemini's dialect → canonical requests (the reverse of the Gemini adapter's
translation), with Google-style 400s for anything malformed.

As for Anthropic's dialect (:mod:`polyroute.surface.anthropic.decode`), what is well formed but
has no canonical equivalent (server tools such as ``googleSearch``, ``cachedContent``, code
execution parts, thought signatures on text parts …) is not refused here: the body is kept
(``ChatRequest.native``) and a Gemini upstream gets it untouched, while any other protocol
refuses the request naming the first such thing.

    Gemini                                  canonical (OpenAI-shaped)
    systemInstruction.parts[].text      →   a system message
    contents[] role user / model        →   user / assistant messages
    inlineData image/*, application/pdf,
      audio/*                           →   image_url / file / input_audio parts
    fileData (image/*)                  →   image_url with the file's URI
    functionCall (+ thoughtSignature)   →   assistant tool_calls (signature in extra_content)
    functionResponse                    →   a tool message, paired by id, else by name
    text parts with thought: true       →   reasoning_content
    tools[].functionDeclarations        →   function tools (OpenAPI schemas made JSON Schema)
    toolConfig.functionCallingConfig    →   tool_choice
    generationConfig                    →   max_completion_tokens, temperature, top_p, top_k,
                                            n, stop, seed, penalties, response_format,
                                            thinking / reasoning_effort
"""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec

from polyroute.errors import InvalidRequest
from polyroute.model.chat import (
    ChatRequest,
    ContentPart,
    FunctionCall,
    Message,
    NativeRequest,
    StreamOptions,
    ToolCall,
)
from polyroute.model.tools import ImageURL, ResponseFormat, ToolChoice
from polyroute.model.tools import Tool as CanonicalTool
from polyroute.nesting import check_json_depth
from polyroute.surface.gemini.wire import (
    COUNT_DECODER,
    FIELDS_DECODER,
    KNOWN_FIELDS,
    KNOWN_GENERATION,
    KNOWN_TOOL,
    LIST_OF_FIELDS_DECODER,
    REQUEST_DECODER,
    Content,
    GenerateContentRequest,
    GenerationConfig,
    Part,
    Tool,
    ToolConfig,
)

PROTOCOL = "gemini"
"""The upstream protocol that speaks this dialect."""
_encode = msgspec.json.Encoder().encode
_THINKING_LEVELS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}


class _Untranslatable:
    def __init__(self) -> None:
        self.first: InvalidRequest | None = None

    def note(self, param: str, why: str) -> None:
        if self.first is None:
            self.first = InvalidRequest(f"{param}: {why}", param=param)


def model_name(path_model: str) -> str:
    """The model the client named in the URL, without Google's ``models/`` collection."""
    return path_model.removeprefix("models/")


def generate_request(body: bytes, model: str, *, stream: bool) -> ChatRequest:
    fields = _fields(body)
    wire = _typed(body)
    skipped = _Untranslatable()
    for name in fields:
        if name not in KNOWN_FIELDS:
            skipped.note(name, "a field this gateway cannot translate for other vendors")
    request = _canonical(wire, fields, model, stream, skipped)
    problem = skipped.first
    request.native = NativeRequest(
        PROTOCOL, fields, body=body,
        untranslatable=problem.param if problem is not None else None,
        why=problem.message if problem is not None else "")
    return request


def count_request(body: bytes, model: str) -> ChatRequest:
    """``:countTokens``: ``contents``, or a whole ``generateContentRequest``."""
    fields = _fields(body)
    try:
        wire = COUNT_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None
    inner = wire.generate_content_request
    if inner is None:
        return _canonical(GenerateContentRequest(contents=wire.contents or []), fields, model,
                          False, _Untranslatable(), allow_empty=True)
    return _canonical(inner, FIELDS_DECODER.decode(fields["generateContentRequest"]), model,
                      False, _Untranslatable(), allow_empty=True)


def _fields(body: bytes) -> dict[str, msgspec.Raw]:
    if not body:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    check_json_depth(body)
    try:
        return FIELDS_DECODER.decode(body)
    except msgspec.DecodeError:
        raise InvalidRequest("Invalid JSON payload received: the body must be a JSON "
                             "object.") from None


def _typed(body: bytes) -> GenerateContentRequest:
    try:
        return REQUEST_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: msgspec.ValidationError) -> InvalidRequest:
    text = str(exc)
    where = text.rsplit(" - at `$", 1)[-1].rstrip("`").lstrip(".") if " - at `$" in text \
        else None
    return InvalidRequest(f"Invalid value at '{where}': {text.split(' - at ')[0]}"
                          if where else text, param=where or None)


def _canonical(wire: GenerateContentRequest, fields: dict[str, msgspec.Raw], model: str,
               stream: bool, skipped: _Untranslatable, *,
               allow_empty: bool = False) -> ChatRequest:
    if not wire.contents and not allow_empty:
        raise InvalidRequest("* GenerateContentRequest.contents: contents is not specified",
                             param="contents")
    messages: list[Message] = []
    if wire.system_instruction is not None:
        system = _system(wire.system_instruction, skipped)
        if system:
            messages.append(Message("system", system))
    calls = _Calls()
    for i, content in enumerate(wire.contents):
        messages += _content(content, i, calls, skipped)
    request = ChatRequest(
        messages=messages, model=model, stream=stream,
        # Gemini streams always report usage, so ask every upstream for it.
        stream_options=StreamOptions(include_usage=True) if stream else None)
    if wire.tools:
        request.tools = _tools(wire.tools, fields, skipped) or None
    if wire.tool_config is not None and request.tools:
        request.tool_choice = _tool_choice(wire.tool_config, skipped)
    if wire.generation_config is not None:
        _generation(request, wire.generation_config, fields, skipped)
    return request


def _system(content: Content, skipped: _Untranslatable) -> str:
    texts = []
    for j, part in enumerate(content.parts):
        if part.text is not None:
            texts.append(part.text)
        else:
            skipped.note(f"systemInstruction.parts[{j}]", "only text can be translated")
    return "\n".join(texts)


class _Calls:
    """Function calls of the conversation so far, so a response without an id answers the
    oldest unanswered call of its name (Gemini pairs them by name and order)."""

    def __init__(self) -> None:
        self._open: dict[str, deque[str]] = {}

    def add(self, name: str, call_id: str) -> None:
        self._open.setdefault(name, deque()).append(call_id)

    def answer(self, name: str, call_id: str | None, fallback: str) -> str:
        waiting = self._open.get(name)
        if call_id is not None:
            if waiting and call_id in waiting:
                waiting.remove(call_id)
            return call_id
        return waiting.popleft() if waiting else fallback


def _content(content: Content, i: int, calls: _Calls,
             skipped: _Untranslatable) -> list[Message]:
    where = f"contents[{i}]"
    role = content.role or "user"
    if role == "model":
        return [_model(content.parts, i, calls, skipped)]
    if role != "user":
        raise InvalidRequest(f"{where}.role: Please use a valid role: user, model.",
                             param=f"{where}.role")
    out: list[Message] = []
    parts: list[ContentPart] = []
    for j, part in enumerate(content.parts):
        response = part.function_response
        if response is not None:
            call_id = calls.answer(response.name, response.id, f"call_{i}_{j}")
            out.append(Message("tool", _encode(response.response or {}).decode(),
                               tool_call_id=call_id))
            continue
        translated = _user_part(part, f"{where}.parts[{j}]", skipped)
        if translated is not None:
            parts.append(translated)
    if parts:
        simple = all(p.type == "text" for p in parts)
        out.append(Message("user", "".join(p.text or "" for p in parts) if simple else parts))
    return out


def _user_part(part: Part, where: str, skipped: _Untranslatable) -> ContentPart | None:
    if part.text is not None:
        return ContentPart(type="text", text=part.text)
    if part.inline_data is not None:
        mime, data = part.inline_data.mime_type, part.inline_data.data
        url = f"data:{mime};base64,{data}"
        if mime.startswith("image/"):
            return ContentPart(type="image_url", image_url=ImageURL(url))
        if mime == "application/pdf":
            return ContentPart(type="file", file={"file_data": url})
        if mime.startswith("audio/"):
            return ContentPart(type="input_audio",
                               input_audio={"data": data, "format": mime[6:]})
        skipped.note(f"{where}.inlineData", f"'{mime}' data cannot be translated")
        return None
    if part.file_data is not None and (part.file_data.mime_type or "").startswith("image/"):
        return ContentPart(type="image_url", image_url=ImageURL(part.file_data.file_uri))
    skipped.note(where, "this kind of part cannot be translated for other vendors")
    return None


def _model(parts: list[Part], i: int, calls: _Calls, skipped: _Untranslatable) -> Message:
    where = f"contents[{i}]"
    texts: list[str] = []
    thoughts: list[str] = []
    tool_calls: list[ToolCall] = []
    for j, part in enumerate(parts):
        call = part.function_call
        if call is not None:
            call_id = call.id or f"call_{i}_{j}"  # Gemini's calls rarely have ids
            calls.add(call.name, call_id)
            extra = ({"google": {"thought_signature": part.thought_signature}}
                     if part.thought_signature else None)
            tool_calls.append(ToolCall(
                id=call_id, type="function", extra_content=extra,
                function=FunctionCall(name=call.name,
                                      arguments=_encode(call.args or {}).decode())))
        elif part.text is not None:
            (thoughts if part.thought else texts).append(part.text)
            if part.thought_signature:
                skipped.note(f"{where}.parts[{j}].thoughtSignature",
                             "a signature on a text part has no equivalent elsewhere")
        else:
            skipped.note(f"{where}.parts[{j}]", "this kind of part cannot be translated")
    return Message("assistant", "".join(texts) if texts or not tool_calls else None,
                   tool_calls=tool_calls or None, reasoning_content="".join(thoughts) or None)


def _tools(tools: list[Tool], fields: dict[str, msgspec.Raw],
           skipped: _Untranslatable) -> list[CanonicalTool]:
    for j, raw in enumerate(LIST_OF_FIELDS_DECODER.decode(fields["tools"])):
        for kind in raw:
            if kind not in KNOWN_TOOL:
                skipped.note(f"tools[{j}].{kind}", "this tool runs only on Google's servers")
    out = []
    for tool in tools:
        for declaration in tool.function_declarations or ():
            if declaration.parameters_json_schema is not None:
                parameters = declaration.parameters_json_schema
            elif declaration.parameters is not None:
                parameters = json_schema(declaration.parameters)
            else:
                parameters = {"type": "object", "properties": {}}
            out.append(CanonicalTool.of_function(declaration.name, parameters,
                                                 declaration.description))
    return out


def json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Gemini's OpenAPI-style ``Schema`` (``"type": "OBJECT"``, ``nullable``) as JSON Schema."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: json_schema(v) if isinstance(v, dict) else v
                        for name, v in value.items()}
        elif key == "items" and isinstance(value, dict):
            out[key] = json_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out[key] = [json_schema(v) if isinstance(v, dict) else v for v in value]
        elif key not in ("nullable", "propertyOrdering"):
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _tool_choice(config: ToolConfig, skipped: _Untranslatable) -> str | ToolChoice | None:
    calling = config.function_calling_config
    if calling is None or calling.mode is None:
        return None
    mode = calling.mode.upper()
    if mode == "ANY":
        names = calling.allowed_function_names or []
        if len(names) == 1:
            return ToolChoice.naming(names[0])
        if len(names) > 1:
            skipped.note("toolConfig.functionCallingConfig.allowedFunctionNames",
                         "several allowed functions cannot be translated")
        return "required"
    if mode in ("AUTO", "VALIDATED", "MODE_UNSPECIFIED"):
        return "auto"
    if mode == "NONE":
        return "none"
    raise InvalidRequest(f"toolConfig.functionCallingConfig.mode: unknown mode '{mode}'",
                         param="toolConfig.functionCallingConfig.mode")


def _generation(request: ChatRequest, config: GenerationConfig,
                fields: dict[str, msgspec.Raw], skipped: _Untranslatable) -> None:
    for name in FIELDS_DECODER.decode(fields["generationConfig"]):
        if name not in KNOWN_GENERATION:
            skipped.note(f"generationConfig.{name}", "it cannot be translated for other vendors")
    request.temperature = config.temperature
    request.top_p = config.top_p
    if config.top_k is not None:
        if config.top_k < 0 or config.top_k != int(config.top_k):
            raise InvalidRequest("generationConfig.topK: must be a whole number, at least 0",
                                 param="generationConfig.topK")
        request.top_k = int(config.top_k)
    request.max_completion_tokens = config.max_output_tokens
    request.stop = config.stop_sequences or None
    request.seed = config.seed
    request.presence_penalty = config.presence_penalty
    request.frequency_penalty = config.frequency_penalty
    if config.candidate_count is not None and config.candidate_count != 1:
        request.n = config.candidate_count
    mime = config.response_mime_type
    if mime == "application/json":
        schema = config.response_json_schema
        if schema is None and config.response_schema is not None:
            schema = json_schema(config.response_schema)
        request.response_format = ResponseFormat("json_object") if schema is None else \
            ResponseFormat.of_schema(schema)
    elif mime not in (None, "text/plain"):
        skipped.note("generationConfig.responseMimeType", f"'{mime}' cannot be translated")
    thinking = config.thinking_config
    if thinking is not None:
        if thinking.thinking_level is not None:
            level = _THINKING_LEVELS.get(thinking.thinking_level.lower())
            if level is None:
                skipped.note("generationConfig.thinkingConfig.thinkingLevel",
                             f"'{thinking.thinking_level}' cannot be translated")
            request.reasoning_effort = level
        budget = thinking.thinking_budget
        if budget == 0:
            request.thinking = {"type": "disabled"}
        elif budget is not None and budget > 0:
            request.thinking = {"type": "enabled", "budget_tokens": budget}
