"""Refusals every translation makes the same way, whatever the vendor: a parameter it cannot
carry, tool-call arguments that are not a JSON object, a tool result that names no call."""

from __future__ import annotations

from typing import Any

import msgspec

from polyroute.errors import UpstreamRejected
from polyroute.model.chat import Message
from polyroute.nesting import MAX_JSON_DEPTH, too_deep

_any_decoder = msgspec.json.Decoder()


def unsupported(vendor: str, param: str, deployment: str, why: str = "") -> UpstreamRejected:
    detail = f": {why}" if why else ""
    return UpstreamRejected(
        f"The parameter '{param}' is not supported by {vendor} (deployment '{deployment}')"
        f"{detail}. Remove it, or list it in the provider's quirks.drop_params to have the "
        "gateway drop it.",
        param=param, code="unsupported_parameter", deployment=deployment)


def object_arguments(vendor: str, arguments: str | None, where: str, deployment: str) -> Any:
    """OpenAI carries tool-call arguments as JSON text; vendors that take an object need it to
    be one (empty text is no arguments)."""
    if not arguments or not arguments.strip():
        return {}
    depth = too_deep(arguments)
    if depth is not None:
        raise UpstreamRejected(
            f"Invalid '{where}': the tool-call arguments nest {depth} levels deep; the limit "
            f"is {MAX_JSON_DEPTH}.", param=where, code="json_too_deep", deployment=deployment)
    try:
        value = _any_decoder.decode(arguments)
    except (msgspec.DecodeError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise UpstreamRejected(
            f"Invalid '{where}': {vendor} needs tool-call arguments that are a JSON object.",
            param=where, code="invalid_value", deployment=deployment)
    return value


def tool_call_id(message: Message, where: str, deployment: str) -> str:
    """The call a tool result answers: vendors that pair results by id need it."""
    if not message.tool_call_id:
        raise UpstreamRejected(f"Missing required parameter: '{where}.tool_call_id'.",
                               param=f"{where}.tool_call_id", deployment=deployment)
    return message.tool_call_id
