"""JSON bodies of the media endpoints → :class:`~polyroute.model.media.MediaRequest`: the
fields polyroute needs decoded and checked (OpenAI's error shape for anything malformed), the
body's top-level fields kept as sent."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from polyroute.model.media import MediaRequest, Units
from polyroute.surface.openai.decode import decode_fields

DEFAULT_IMAGE_MODEL = "dall-e-2"
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"
"""What OpenAI uses when a request names no model (the route takes this group name too)."""
SPEECH_MAX_CHARS = 4096
DOCUMENTS_PER_SEARCH = 100


class _ImageGeneration(msgspec.Struct):
    prompt: Annotated[str, Meta(min_length=1)]
    model: str | None = None
    n: Annotated[int, Meta(ge=1, le=10)] | None = None
    size: str | None = None
    quality: str | None = None


class _Speech(msgspec.Struct):
    model: Annotated[str, Meta(min_length=1)]
    input: Annotated[str, Meta(min_length=1, max_length=SPEECH_MAX_CHARS)]
    voice: str | dict[str, Any]


class _Rerank(msgspec.Struct):
    model: Annotated[str, Meta(min_length=1)]
    query: Annotated[str, Meta(min_length=1)]
    documents: Annotated[list[str | dict[str, Any]], Meta(min_length=1)]
    top_n: Annotated[int, Meta(ge=1)] | None = None


class _Moderation(msgspec.Struct):
    input: str | Annotated[list[str | dict[str, Any]], Meta(min_length=1)]
    model: str | None = None


_image_decoder = msgspec.json.Decoder(_ImageGeneration)
_speech_decoder = msgspec.json.Decoder(_Speech)
_rerank_decoder = msgspec.json.Decoder(_Rerank)
_moderation_decoder = msgspec.json.Decoder(_Moderation)


def image_unit(size: str | None, quality: str | None) -> str:
    """``image:<size>[:<quality>]``, as the catalog prices images (1024x1024 when unsaid)."""
    unit = f"image:{size or '1024x1024'}"
    return f"{unit}:{quality}" if quality else unit


def image_generation(body: bytes) -> MediaRequest:
    fields, typed = decode_fields(body, _image_decoder)
    n = typed.n or 1
    return MediaRequest("images.generations", typed.model or DEFAULT_IMAGE_MODEL, fields,
                        estimate=Units(image_unit(typed.size, typed.quality), n),
                        input_tokens=_tokens(typed.prompt))


def speech(body: bytes) -> MediaRequest:
    fields, typed = decode_fields(body, _speech_decoder)
    return MediaRequest("audio.speech", typed.model, fields,
                        estimate=Units("character", len(typed.input)),
                        input_tokens=_tokens(typed.input))


def rerank(body: bytes) -> MediaRequest:
    fields, typed = decode_fields(body, _rerank_decoder)
    text = typed.query + "".join(d if isinstance(d, str) else str(d) for d in typed.documents)
    # Cohere and Bedrock bill a search per 100 documents (a query "with up to 100").
    searches = -(-len(typed.documents) // DOCUMENTS_PER_SEARCH)
    return MediaRequest("rerank", typed.model, fields, estimate=Units("search", searches),
                        input_tokens=_tokens(text))


def moderation(body: bytes) -> MediaRequest:
    fields, typed = decode_fields(body, _moderation_decoder)
    text = typed.input if isinstance(typed.input, str) else str(typed.input)
    return MediaRequest("moderations", typed.model or DEFAULT_MODERATION_MODEL, fields,
                        input_tokens=_tokens(text))


def _tokens(text: str) -> int:
    return len(text) // 4 + 1
