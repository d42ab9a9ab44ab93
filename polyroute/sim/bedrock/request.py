"""The Converse request, validated the way Bedrock validates it: unknown fields, a
conversation that does not start with the user or does not alternate, blank text, a content
block holding two kinds, tool blocks without a toolConfig, tool uses without their results and
images that are not base64 are ValidationExceptions with Bedrock's wording."""

from __future__ import annotations

import binascii
from typing import Any

import msgspec

from polyroute.sim.bedrock.errors import validation

_DECODER = msgspec.json.Decoder()


class _Strict(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    pass


class ToolUse(_Strict):
    tool_use_id: str
    name: str
    input: Any
    type: str | None = None


class ToolResult(_Strict):
    tool_use_id: str
    content: list[dict[str, Any]]
    status: str | None = None
    type: str | None = None


class Image(_Strict):
    format: str
    source: dict[str, Any]


class Document(_Strict):
    name: str
    source: dict[str, Any]
    format: str | None = None
    context: str | None = None
    citations: dict[str, Any] | None = None


class Block(_Strict):
    text: str | None = None
    image: Image | None = None
    document: Document | None = None
    video: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    tool_use: ToolUse | None = None
    tool_result: ToolResult | None = None
    guard_content: dict[str, Any] | None = None
    cache_point: dict[str, Any] | None = None
    reasoning_content: dict[str, Any] | None = None
    citations_content: dict[str, Any] | None = None
    search_result: dict[str, Any] | None = None

    def kinds(self) -> list[str]:
        return [f for f in self.__struct_fields__ if getattr(self, f) is not None]

    def plain_text(self) -> str:
        if self.text is not None:
            return self.text
        if self.tool_result is not None:
            return "".join(str(c.get("text", "")) for c in self.tool_result.content)
        return ""


class Turn(_Strict):
    role: str
    content: list[Block]


class SystemBlock(_Strict):
    text: str | None = None
    guard_content: dict[str, Any] | None = None
    cache_point: dict[str, Any] | None = None


class InferenceConfig(_Strict):
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop_sequences: list[str] | None = None


class ToolSpec(_Strict):
    name: str
    input_schema: dict[str, Any]
    description: str | None = None
    strict: bool | None = None


class Tool(_Strict):
    tool_spec: ToolSpec | None = None
    system_tool: dict[str, Any] | None = None
    cache_point: dict[str, Any] | None = None


class ToolConfig(_Strict):
    tools: list[Tool]
    tool_choice: dict[str, Any] | None = None


class ConverseRequest(_Strict):
    messages: list[Turn] = msgspec.field(default_factory=list)
    system: list[SystemBlock] | None = None
    inference_config: InferenceConfig | None = None
    tool_config: ToolConfig | None = None
    guardrail_config: dict[str, Any] | None = None
    additional_model_request_fields: dict[str, Any] | None = None
    prompt_variables: dict[str, Any] | None = None
    additional_model_response_field_paths: list[str] | None = None
    request_metadata: dict[str, str] | None = None
    performance_config: dict[str, Any] | None = None
    service_tier: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None

    def specs(self) -> list[ToolSpec]:
        return [t.tool_spec for t in (self.tool_config.tools if self.tool_config else ())
                if t.tool_spec is not None]

    @property
    def thinking(self) -> bool:
        thinking = (self.additional_model_request_fields or {}).get("thinking")
        return isinstance(thinking, dict) and thinking.get("type") == "enabled"


def decode_converse(body: bytes) -> ConverseRequest:
    try:
        request = msgspec.convert(_DECODER.decode(body), ConverseRequest)
    except msgspec.MsgspecError as exc:
        raise validation(f"Malformed input request: {exc}, please reformat your input and "
                         "try again.") from None
    if not request.messages:
        raise validation("A conversation must start with a user message. Try again with a "
                         "conversation that starts with a user message.")
    uses: set[str] = set()
    for i, turn in enumerate(request.messages):
        if turn.role not in ("user", "assistant"):
            raise validation(f"1 validation error detected: Value '{turn.role}' at "
                             f"'messages.{i + 1}.member.role' failed to satisfy constraint: "
                             "Member must satisfy enum value set: [user, assistant]")
        expected = "user" if i % 2 == 0 else "assistant"
        if turn.role != expected:
            raise validation("A conversation must start with a user message. Try again with a "
                             "conversation that starts with a user message." if i == 0 else
                             "A conversation must alternate between user and assistant roles. "
                             "Make sure the conversation alternates between user and assistant "
                             "roles and try again.")
        if not turn.content:
            raise validation(f"The content field in the Message object at messages.{i} is "
                             "empty. Add a ContentBlock object to the content field and try "
                             "again.")
        for j, block in enumerate(turn.content):
            _check_block(block, f"messages.{i}.content.{j}")
            if block.tool_use is not None:
                uses.add(block.tool_use.tool_use_id)
        if uses and request.tool_config is None:
            raise validation("The toolConfig field must be defined when using toolUse and "
                             "toolResult content blocks.")
        results = {b.tool_result.tool_use_id for b in turn.content if b.tool_result}
        if turn.role == "user" and i > 0:
            before = {b.tool_use.tool_use_id for b in request.messages[i - 1].content
                      if b.tool_use}
            if before - results:
                raise validation(f"Expected toolResult blocks at messages.{i}.content for the "
                                 f"following Ids: {', '.join(sorted(before - results))}")
            if results - before:
                raise validation(f"Found toolResult blocks at messages.{i}.content without "
                                 "matching toolUse blocks in the previous turn.")
    final = request.messages[-1]
    if final.role == "assistant" and final.content and final.content[-1].text is not None \
            and final.content[-1].text != final.content[-1].text.rstrip():
        # A final assistant message is a prefill the model continues (Claude on Bedrock), and
        # like Anthropic's API it may not end in whitespace.
        raise validation("final assistant content cannot end with trailing whitespace")
    for k, system in enumerate(request.system or ()):
        if system.text is not None and not system.text.strip():
            raise validation(f"The text field in the SystemContentBlock object at system.{k} is "
                             "blank. Add text to the text field, and try again.")
    return request


def _check_block(block: Block, where: str) -> None:
    kinds = block.kinds()
    if len(kinds) != 1:
        raise validation(f"The ContentBlock object at {where} must set exactly one of its "
                         f"members, not {len(kinds)} ({', '.join(kinds) or 'none'}).")
    if block.text is not None and not block.text.strip():
        raise validation(f"The text field in the ContentBlock object at {where} is blank. Add "
                         "text to the text field, and try again.")
    image = block.image
    if image is not None:
        if image.format not in ("png", "jpeg", "gif", "webp"):
            raise validation(f"1 validation error detected: Value '{image.format}' at "
                             f"'{where}.image.format' failed to satisfy constraint: Member must "
                             "satisfy enum value set: [png, jpeg, gif, webp]")
        data = image.source.get("bytes")
        if data is not None:
            try:
                binascii.a2b_base64(str(data).encode())
            except binascii.Error:
                raise validation(f"Invalid base64 in {where}.image.source.bytes") from None
        elif "s3Location" not in image.source:
            raise validation(f"The ImageSource at {where}.image.source must set bytes or "
                             "s3Location.")
