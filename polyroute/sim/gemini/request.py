"""The ``generateContent`` and ``batchEmbedContents`` requests, validated the way Gemini
validates them: unknown fields, bad roles, empty turns, a part with two kinds of data, function
responses that do not answer the calls before them, and (as Gemini 3 does) a function call of
the current turn without its thought signature are 400s with Google's wording, so a gateway
that translates carelessly is caught here."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import msgspec

from polyroute.sim.gemini.errors import invalid

ROLES = ("user", "model")


class _Strict(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    pass


AUDIO_TOKENS_PER_SECOND = 32
"""What Gemini counts a second of audio as, heard or spoken."""
_BYTES_PER_SECOND_UNKNOWN = 16_000
"""An audio part that is not a WAV: its length at 128 kbit/s."""


def decode_base64(data: str) -> bytes:
    """Protobuf's JSON reads bytes in either base64 alphabet (google-genai sends the URL-safe
    one); raises ``binascii.Error`` for anything else."""
    return base64.b64decode(data.replace("-", "+").replace("_", "/"), validate=True)


class Blob(_Strict):
    mime_type: str
    data: str
    display_name: str | None = None

    @property
    def size(self) -> int:
        return len(self.data) * 3 // 4 - self.data[-2:].count("=")

    def seconds(self) -> float:
        """An audio part's duration: a WAV's from its header; other audio's at 128 kbit/s."""
        head = decode_base64(self.data[:88])  # the first 66 bytes
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE" and head[12:16] == b"fmt ":
            byte_rate = int.from_bytes(head[28:32], "little")
            if byte_rate:
                return max(0.0, (self.size - 44) / byte_rate)
        return self.size / _BYTES_PER_SECOND_UNKNOWN

    def tokens(self) -> int:
        """What Gemini counts the part as: 258 for an image, 32 a second of audio."""
        if self.mime_type.startswith("audio/"):
            return max(1, round(self.seconds() * AUDIO_TOKENS_PER_SECOND))
        return 258


class FileData(_Strict):
    file_uri: str
    mime_type: str | None = None
    display_name: str | None = None


class FunctionCall(_Strict):
    name: str
    args: dict[str, Any] | None = None
    id: str | None = None


class FunctionResponse(_Strict):
    name: str
    response: dict[str, Any]
    id: str | None = None
    will_continue: bool | None = None
    scheduling: str | None = None
    parts: list[dict[str, Any]] | None = None


class Part(_Strict):
    text: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None
    executable_code: dict[str, Any] | None = None
    code_execution_result: dict[str, Any] | None = None
    thought: bool | None = None
    thought_signature: str | None = None
    video_metadata: dict[str, Any] | None = None
    media_resolution: dict[str, Any] | None = None
    part_metadata: dict[str, Any] | None = None

    def data_kinds(self) -> list[str]:
        kinds = ("text", "inline_data", "file_data", "function_call", "function_response",
                 "executable_code", "code_execution_result")
        return [k for k in kinds if getattr(self, k) is not None]


class Content(_Strict):
    parts: list[Part] = msgspec.field(default_factory=list)
    role: str | None = None

    def text(self) -> str:
        return "".join(p.text or "" for p in self.parts if not p.thought)


class FunctionDeclaration(_Strict):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    parameters_json_schema: Any = None
    response: dict[str, Any] | None = None
    response_json_schema: Any = None
    behavior: str | None = None

    def schema(self) -> dict[str, Any] | None:
        schema = self.parameters_json_schema or self.parameters
        return schema if isinstance(schema, dict) else None


class Tool(msgspec.Struct, rename="camel"):
    """Built-in tools (googleSearch, codeExecution …) are accepted and ignored."""

    function_declarations: list[FunctionDeclaration] | None = None


class FunctionCallingConfig(_Strict):
    mode: str | None = None
    allowed_function_names: list[str] | None = None
    stream_function_call_arguments: bool | None = None


class ToolConfig(_Strict):
    function_calling_config: FunctionCallingConfig | None = None
    retrieval_config: dict[str, Any] | None = None
    include_server_side_tool_invocations: bool | None = None


class ThinkingConfig(_Strict):
    include_thoughts: bool | None = None
    thinking_budget: int | None = None
    thinking_level: str | None = None


class PrebuiltVoiceConfig(_Strict):
    voice_name: str | None = None


class VoiceConfig(_Strict):
    prebuilt_voice_config: PrebuiltVoiceConfig | None = None
    replicated_voice_config: dict[str, Any] | None = None


class SpeechConfig(_Strict):
    voice_config: VoiceConfig | None = None
    multi_speaker_voice_config: dict[str, Any] | None = None
    language_code: str | None = None


class GenerationConfig(_Strict):
    stop_sequences: list[str] | None = None
    response_mime_type: str | None = None
    response_schema: dict[str, Any] | None = None
    response_json_schema: Any = None
    response_modalities: list[str] | None = None
    candidate_count: int | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_logprobs: bool | None = None
    logprobs: int | None = None
    enable_enhanced_civic_answers: bool | None = None
    speech_config: SpeechConfig | None = None
    thinking_config: ThinkingConfig | None = None
    media_resolution: str | None = None
    image_config: dict[str, Any] | None = None


class GenerateContentRequest(_Strict):
    contents: list[Content] = msgspec.field(default_factory=list)
    system_instruction: Content | None = None
    tools: list[Tool] | None = None
    tool_config: ToolConfig | None = None
    generation_config: GenerationConfig | None = None
    safety_settings: list[dict[str, Any]] | None = None
    cached_content: str | None = None
    service_tier: str | None = None
    store: bool | None = None

    @property
    def config(self) -> GenerationConfig:
        return self.generation_config or GenerationConfig()

    def declarations(self) -> list[FunctionDeclaration]:
        return [d for t in self.tools or () for d in t.function_declarations or ()]


class EmbedRequest(_Strict):
    content: Content
    model: str | None = None
    task_type: str | None = None
    title: str | None = None
    output_dimensionality: int | None = None


class BatchEmbedRequest(_Strict):
    requests: list[EmbedRequest]


_DECODER = msgspec.json.Decoder()
_UNKNOWN = re.compile(r"Object contains unknown field `([^`]+)`(?: - at `\$\.?([^`]*)`)?")
# Fields whose values are free-form JSON (google.protobuf.Struct / Value) or schemas: their
# keys are data, not field names, and are never renamed.
_OPAQUE = frozenset({"args", "response", "parameters", "parametersJsonSchema",
                     "responseJsonSchema", "responseSchema", "metadata", "labels"})


def _camel_keys(value: Any) -> Any:
    """Protobuf's JSON parser accepts a field's proto name (``function_declarations``) as
    well as its JSON name (``functionDeclarations``); google-genai sends some of each."""
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, inner in value.items():
        name = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key) if "_" in key else key
        out[name] = inner if name in _OPAQUE else _camel_keys(inner)
    return out


def _decode(kind: type[Any], body: bytes) -> Any:
    try:
        return msgspec.convert(_camel_keys(_DECODER.decode(body)), kind)
    except msgspec.MsgspecError as exc:
        message = str(exc)
        unknown = _UNKNOWN.search(message)
        if unknown:
            where = _snake(unknown.group(2) or "")
            at = f" at '{where}'" if where else ""
            raise invalid(f'Invalid JSON payload received. Unknown name "{unknown.group(1)}"'
                          f"{at}: Cannot find field.") from None
        raise invalid(f"Invalid JSON payload received. {message}") from None


def _snake(path: str) -> str:
    return re.sub(r"(?<=[a-z])([A-Z])", lambda m: "_" + m.group(1).lower(), path)


def decode_generate(body: bytes) -> GenerateContentRequest:
    request: GenerateContentRequest = _decode(GenerateContentRequest, body)
    if not request.contents:
        raise invalid("* GenerateContentRequest.contents: contents is not specified\n")
    current = _current_turn_start(request.contents)
    for i, content in enumerate(request.contents):
        where = f"GenerateContentRequest.contents[{i}]"
        if content.role not in ROLES:
            raise invalid(f"Please use a valid role: {', '.join(ROLES)}.")
        if not content.parts:
            raise invalid(f"* {where}.parts: contents.parts must not be empty.\n")
        for j, part in enumerate(content.parts):
            _check_part(part, f"{where}.parts[{j}]")
        calls = [p for p in content.parts if p.function_call is not None]
        if content.role == "model" and calls and i >= current and not calls[0].thought_signature:
            raise invalid(
                f"Function call is missing a thought_signature in functionCall parts. This is "
                f"required for tools to work correctly, and missing thought_signature may lead "
                f"to degraded model performance. Additional data, function call "
                f"`{calls[0].function_call.name if calls[0].function_call else ''}` , position "
                f"{i + 1}. Please refer to https://ai.google.dev/gemini-api/docs/"
                "thought-signatures for more details.")
        responses = [p for p in content.parts if p.function_response is not None]
        if responses:
            before = request.contents[i - 1] if i > 0 else None
            expected = sum(p.function_call is not None for p in before.parts) if before else 0
            if before is None or before.role != "model" or expected != len(responses):
                raise invalid("Please ensure that the number of function response parts is "
                              "equal to the number of function call parts of the function "
                              "call turn.")
    if request.system_instruction is not None:
        for j, part in enumerate(request.system_instruction.parts):
            _check_part(part, f"GenerateContentRequest.system_instruction.parts[{j}]")
    config = request.config
    if config.response_schema is not None and config.response_json_schema is not None:
        raise invalid("response_schema and response_json_schema cannot both be set.")
    if (config.response_schema is not None or config.response_json_schema is not None) and \
            config.response_mime_type not in ("application/json", "text/x.enum"):
        raise invalid("* GenerateContentRequest.generation_config.response_mime_type: "
                      "response_mime_type must be application/json or text/x.enum when "
                      "response_schema is set.\n")
    if config.stop_sequences is not None and len(config.stop_sequences) > 5:
        raise invalid("* GenerateContentRequest.generation_config.stop_sequences: at most 5 "
                      "stop sequences are allowed.\n")
    if config.max_output_tokens is not None and config.max_output_tokens < 1:
        raise invalid("* GenerateContentRequest.generation_config.max_output_tokens: "
                      "max_output_tokens must be positive.\n")
    for k, declaration in enumerate(request.declarations()):
        if declaration.parameters is not None and declaration.parameters_json_schema is not None:
            raise invalid(f"* GenerateContentRequest.tools[0].function_declarations[{k}]: "
                          "parameters and parameters_json_schema cannot both be set.\n")
    return request


def _current_turn_start(contents: list[Content]) -> int:
    """Where the current turn begins: at the last user content with text (a function response
    continues a turn, it does not start one). Gemini 3 checks signatures from there on."""
    for i in range(len(contents) - 1, -1, -1):
        content = contents[i]
        if content.role == "user" and any(p.text for p in content.parts):
            return i
    return 0


def _check_part(part: Part, where: str) -> None:
    kinds = part.data_kinds()
    if len(kinds) > 1:
        raise invalid(f"Invalid JSON payload received. Invalid value at '{where}' (oneof field "
                      f"'data' is already set. Cannot set '{_snake(kinds[1])}')")
    if not kinds:
        raise invalid(f"* {where}: required oneof field 'data' must have one initialized "
                      "field\n")
    if part.inline_data is not None:
        try:
            decode_base64(part.inline_data.data)
        except binascii.Error:
            raise invalid(f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 "
                          "decoding failed") from None


def decode_batch_embed(body: bytes) -> BatchEmbedRequest:
    request: BatchEmbedRequest = _decode(BatchEmbedRequest, body)
    if not request.requests:
        raise invalid("* BatchEmbedContentsRequest.requests: requests is not specified\n")
    return request
