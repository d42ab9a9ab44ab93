"""Gemini's ``GenerateContentRequest``, as clients send it (the parts polyroute reads).

Field names are Google's camelCase JSON names (``rename="camel"``); fields polyroute does not
read are skipped here and noted by :mod:`.decode` from the undecoded top level."""

from __future__ import annotations

from typing import Any

import msgspec

from polyroute.model.chat import OutputTokens


class _Wire(msgspec.Struct, rename="camel"):
    pass


class Blob(_Wire):
    mime_type: str = ""
    data: str = ""


class FileData(_Wire):
    file_uri: str = ""
    mime_type: str | None = None


class FunctionCall(_Wire):
    name: str = ""
    args: dict[str, Any] | None = None
    id: str | None = None


class FunctionResponse(_Wire):
    name: str = ""
    response: dict[str, Any] | None = None
    id: str | None = None


class Part(_Wire):
    text: str | None = None
    thought: bool | None = None
    thought_signature: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None
    executable_code: dict[str, Any] | None = None
    code_execution_result: dict[str, Any] | None = None


class Content(_Wire):
    parts: list[Part] = msgspec.field(default_factory=list)
    role: str | None = None


class FunctionDeclaration(_Wire):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    """OpenAPI-style schema (``"type": "OBJECT"``)."""
    parameters_json_schema: dict[str, Any] | None = None
    """JSON Schema as it is."""


class Tool(_Wire):
    function_declarations: list[FunctionDeclaration] | None = None


class FunctionCallingConfig(_Wire):
    mode: str | None = None
    allowed_function_names: list[str] | None = None


class ToolConfig(_Wire):
    function_calling_config: FunctionCallingConfig | None = None


class ThinkingConfig(_Wire):
    include_thoughts: bool | None = None
    thinking_budget: int | None = None
    thinking_level: str | None = None


class GenerationConfig(_Wire):
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    """A float in Google's schema (and in its SDK): made an integer for the canonical model."""
    candidate_count: int | None = None
    max_output_tokens: OutputTokens | None = None
    stop_sequences: list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_mime_type: str | None = None
    response_schema: dict[str, Any] | None = None
    response_json_schema: dict[str, Any] | None = None
    thinking_config: ThinkingConfig | None = None


class GenerateContentRequest(_Wire):
    contents: list[Content] = msgspec.field(default_factory=list)
    system_instruction: Content | None = None
    tools: list[Tool] | None = None
    tool_config: ToolConfig | None = None
    generation_config: GenerationConfig | None = None


class CountTokensRequest(_Wire):
    contents: list[Content] | None = None
    generate_content_request: GenerateContentRequest | None = None


REQUEST_DECODER = msgspec.json.Decoder(GenerateContentRequest)
COUNT_DECODER = msgspec.json.Decoder(CountTokensRequest)
FIELDS_DECODER = msgspec.json.Decoder(dict[str, msgspec.Raw])
LIST_OF_FIELDS_DECODER = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])

KNOWN_FIELDS = frozenset({"contents", "systemInstruction", "tools", "toolConfig",
                          "generationConfig", "safetySettings", "model"})
"""Top-level fields the canonical model carries (safety settings are accepted and not
translated: other vendors have their own filters)."""
KNOWN_GENERATION = frozenset({
    "temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences",
    "seed", "presencePenalty", "frequencyPenalty", "responseMimeType", "responseSchema",
    "responseJsonSchema", "thinkingConfig"})
KNOWN_TOOL = frozenset({"functionDeclarations"})
