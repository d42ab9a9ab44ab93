"""Which capabilities a request *uses* (issue 14): recorded per request in the ledger's
``features`` column, so the independence measures know which traffic only some deployments
can serve. Only what the request itself shows; no body is stored."""

from __future__ import annotations

from polyroute.model.chat import ChatRequest


def request_features(request: ChatRequest) -> str | None:
    """Comma-separated, in a fixed order (tools, parallel_tool_calls, json_schema, vision,
    audio); None: none of them."""
    used = []
    if request.tools:
        used.append("tools")
        if request.parallel_tool_calls:
            used.append("parallel_tool_calls")
    if request.response_format is not None and request.response_format.type == "json_schema":
        used.append("json_schema")
    kinds = {part.type for message in request.messages if type(message.content) is list
             for part in message.content}
    if kinds:  # most prompts are plain text: no parts at all
        if not kinds.isdisjoint(_VISION):
            used.append("vision")
        if not kinds.isdisjoint(_AUDIO):
            used.append("audio")
    return ",".join(used) or None


_VISION = frozenset({"image_url", "image", "input_image"})
_AUDIO = frozenset({"input_audio", "audio"})
