"""What the simulated model answers: text (configured or echoed) or a forced tool call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from polyroute.sim import errors
from polyroute.sim.request_schema import ChatRequest, FunctionDefinition, NamedToolChoice
from polyroute.sim.tokens import count_tokens, group_tokens, split_tokens
from polyroute.sim.tool_arguments import argument_fragments, example_arguments

ECHO_PREFIX = "echo"


@dataclass(frozen=True)
class ToolCallReply:
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Reply:
    """One choice's answer, already cut into the pieces that streaming chunks carry."""

    pieces: list[str]
    finish_reason: str
    completion_tokens: int
    tool_call: ToolCallReply | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def prompt_tokens(request: ChatRequest) -> int:
    return sum(count_tokens(message.text()) for message in request.messages)


def prompt_pieces(request: ChatRequest) -> list[tuple[bytes, int]]:
    """The prompt as the prompt cache sees it: tools (uncounted, as in prompt_tokens), then
    each message with its tokens."""
    pieces = [(msgspec.json.encode(request.tools), 0)] if request.tools else []
    for message in request.messages:
        text = message.text()
        pieces.append((message.role.encode() + b"\0" + text.encode(), count_tokens(text)))
    return pieces


def reply_text(request: ChatRequest, model: str, default_text: str) -> str:
    """Echo models repeat the last user message so tests can check bytes end to end."""
    if not model.startswith(ECHO_PREFIX):
        return default_text
    for message in reversed(request.messages):
        if message.role == "user":
            return message.text()
    return ""


def forced_function(request: ChatRequest) -> FunctionDefinition | None:
    choice = request.tool_choice
    if choice is None or choice in ("auto", "none"):
        return None
    if not request.tools:
        raise errors.ApiError(
            400,
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
            "are specified.",
            param="tool_choice",
        )
    if choice == "required":
        return request.tools[0].function
    if isinstance(choice, NamedToolChoice):
        for tool in request.tools:
            if tool.function.name == choice.function.name:
                return tool.function
        raise errors.ApiError(
            400,
            f"Tool choice 'function' with name '{choice.function.name}' not found in "
            "'tools' parameter.",
            param="tool_choice",
        )
    raise errors.ApiError(
        400,
        f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'.",
        param="tool_choice",
        code="invalid_value",
    )


def build_reply(
    request: ChatRequest,
    model: str,
    *,
    default_text: str,
    chunk_tokens: int,
    new_call_id: Callable[[], str],
    continues_prefill: bool = False,
) -> Reply:
    """``continues_prefill``: a final assistant message is the start of the answer, to be
    continued (Anthropic's and Bedrock's prefill; OpenAI's API answers it anew instead)."""
    function = forced_function(request)
    if function is not None:
        arguments = example_arguments(function.parameters)
        fragments = argument_fragments(arguments)
        return Reply(
            pieces=group_tokens(fragments, chunk_tokens),
            finish_reason="tool_calls",
            completion_tokens=len(fragments),
            tool_call=ToolCallReply(new_call_id(), function.name, arguments),
        )
    text = reply_text(request, model, default_text)
    last = request.messages[-1] if request.messages else None
    if continues_prefill and last is not None and last.role == "assistant":
        prefix = last.text()
        # The simulated model "wrote" its reply up to the prefix: it continues from there.
        # (A prefix it would never have written gets the whole reply after it.)
        text = text[len(prefix):] if text.startswith(prefix) else text
    tokens = split_tokens(text)
    finish_reason = "stop"
    limit = request.token_limit
    if limit is not None and len(tokens) > limit:
        tokens = tokens[:limit]
        finish_reason = "length"
    return Reply(
        pieces=group_tokens(tokens, chunk_tokens),
        finish_reason=finish_reason,
        completion_tokens=len(tokens),
    )
