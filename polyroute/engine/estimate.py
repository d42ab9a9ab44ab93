"""Token estimates for admission and for streams that end without usage.

Admission reserves a request's worst case before any vendor has counted anything, so the
input estimate must lean high: every byte of the request that reaches the upstream as prompt
is counted (tool definitions and tool-call arguments, ``response_format``, legacy
``functions``, ``prediction``, any other field relayed verbatim), text at about four
characters a token (non-ASCII text more: CJK is at least a token a character), and media by
what the dearest vendor charges for them rather than by their size in the JSON body. The
upstream's usage replaces the estimate when the request settles.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from polyroute.model.chat import ChatRequest, ChatResponse, ContentPart, Message
from polyroute.model.media import Units

IMAGE_TOKENS = 2_700
"""One image, whatever its size in the body: about the most any vendor charges for one (
OpenAI's patch-based models, 1,536 patches × up to ~1.7; Anthropic ~1,600; Gemini 258-1,120).
The bytes of a data: URL say nothing of its pixels: a tiny PNG can be huge."""
AUDIO_CHARS_PER_TOKEN = 24
"""Base64 audio: 4 characters carry 3 bytes; at the lowest bitrate vendors accept (~6 kbit/s,
750 bytes a second) and the highest token rate (Gemini, 32 a second), 24 characters a token."""
FILE_BASE_TOKENS = 1_600
"""A file (PDF) part: one page image at least, plus a token per byte of the file (dense text
PDFs compress to about a byte per token); scanned PDFs are over-reserved, never under."""
FILE_BY_ID_TOKENS = 16_000
"""A file referenced by id (uploaded to the vendor): its size is unknown here."""
_PER_MESSAGE = 4  # role and framing tokens of each message
_PER_REQUEST = 3

_encode = msgspec.json.Encoder().encode
_MODELED = frozenset(f.encode_name for f in msgspec.structs.fields(ChatRequest))
"""Client fields the typed request accounts for (or that carry no prompt text); any other
field is relayed to the upstream verbatim and is counted by its JSON size."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """What admission reserves for one request, before the upstream has counted anything."""

    input_tokens: int
    max_output_tokens: int | None
    """Per answer; None: the client set none."""
    choices: int = 1
    extra_output_tokens: int = 0
    units: Units | None = None
    """A media request's most units (images, seconds, characters): reserved at their price."""


def estimate_input_tokens(request: ChatRequest) -> int:
    """A cheap upper-leaning estimate of the prompt tokens ``request`` will be billed for."""
    units = 0  # quarter tokens: text costs one unit a character
    tokens = _PER_REQUEST + _PER_MESSAGE * len(request.messages)
    for message in request.messages:
        content = message.content
        if isinstance(content, str):
            units += len(content) if content.isascii() else text_units(content)
        elif content is not None:
            for part in content:
                part_units, part_tokens = _part(part)
                units += part_units
                tokens += part_tokens
        if message.tool_calls or message.reasoning_content or message.thinking_blocks \
                or message.name or message.refusal:
            units += _extras(message)
    if request.tools:
        units += len(_encode(request.tools))
    if request.response_format is not None:
        units += len(_encode(request.response_format))
    if request.tool_choice is not None and not isinstance(request.tool_choice, str):
        units += len(_encode(request.tool_choice))
    passthrough = request.passthrough
    if passthrough:
        for name, raw in passthrough.items():
            if name not in _MODELED:
                units += len(raw)  # functions, prediction, vendor extensions …
    estimate = tokens + units // 4 + 1
    native = request.native
    if native is not None and native.untranslatable is not None:
        # Parts the canonical request left out (documents, server tools …) are billed too:
        # the client's body, a character a unit, bounds them.
        return max(estimate, len(native.body) // 4 + 1)
    return estimate


def prediction_tokens(request: ChatRequest) -> int:
    """OpenAI bills the rejected tokens of a ``prediction`` as output: reserve them too."""
    raw = request.passthrough.get("prediction") if request.passthrough else None
    return len(raw) // 4 + 1 if raw is not None else 0


def text_units(text: str) -> int:
    """Quarter tokens of ``text``: a unit per character, and two more per extra UTF-8 byte,
    so CJK text counts a token and a quarter a character."""
    n = len(text)
    if text.isascii():
        return n
    return n + 2 * (len(text.encode("utf-8", "surrogatepass")) - n)


def answer_units(response: ChatResponse) -> int:
    """Quarter tokens of a whole answer: the fallback count when it came without usage."""
    units = 0
    for choice in response.choices:
        message = choice.message
        content = message.content
        if isinstance(content, str):
            units += text_units(content)
        elif content is not None:
            units += sum(_part(part)[0] for part in content)
        units += _extras(message)
    return units


def _part(part: ContentPart) -> tuple[int, int]:
    """(quarter tokens, whole tokens) of one content part."""
    kind = part.type
    if part.text is not None:
        return text_units(part.text), 0
    if part.image_url is not None or kind in ("image_url", "image"):
        return 0, IMAGE_TOKENS
    if part.input_audio is not None:
        data = part.input_audio.get("data")
        size = len(data) if isinstance(data, str) else 0
        return 0, size // AUDIO_CHARS_PER_TOKEN + 1
    if part.file is not None:
        data = part.file.get("file_data")
        if isinstance(data, str):
            return 0, FILE_BASE_TOKENS + len(data) * 3 // 4
        return 0, FILE_BY_ID_TOKENS
    if part.refusal is not None:
        return text_units(part.refusal), 0
    return len(_encode(part)), 0  # a kind polyroute does not model: count its JSON


def _extras(message: Message) -> int:
    units = len(message.name or "")
    for call in message.tool_calls or ():
        function = call.function
        units += len(call.id or "") + 8
        if function is not None:
            units += len(function.name or "") + text_units(function.arguments or "")
    if message.reasoning_content:
        units += text_units(message.reasoning_content)
    for block in message.thinking_blocks or ():
        units += text_units(block.thinking or "") + len(block.data or "")
    if message.refusal:
        units += text_units(message.refusal)
    return units
