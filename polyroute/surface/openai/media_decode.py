"""JSON bodies of the media endpoints → :class:`~polyroute.model.media.MediaRequest`: the
fields polyroute needs decoded and checked (OpenAI's error shape for anything malformed), the
body's top-level fields kept as sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from polyroute.model.media import MediaRequest, MediaText, Place, Units
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
    instructions: str | None = None


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
                        input_tokens=_tokens(typed.prompt),
                        texts=(MediaText(("prompt",), typed.prompt),))


def speech(body: bytes) -> MediaRequest:
    fields, typed = decode_fields(body, _speech_decoder)
    texts = [MediaText(("input",), typed.input)]
    if typed.instructions:  # how to speak it (gpt-4o-mini-tts): sent to the vendor too
        texts.append(MediaText(("instructions",), typed.instructions))
    return MediaRequest("audio.speech", typed.model, fields,
                        estimate=Units("character", len(typed.input)),
                        input_tokens=_tokens(typed.input), texts=tuple(texts))


def rerank(body: bytes) -> MediaRequest:
    fields, typed = decode_fields(body, _rerank_decoder)
    text = typed.query + "".join(d if isinstance(d, str) else str(d) for d in typed.documents)
    # Cohere and Bedrock bill a search per 100 documents (a query "with up to 100").
    searches = -(-len(typed.documents) // DOCUMENTS_PER_SEARCH)
    texts = [MediaText(("query",), typed.query)]
    texts += _strings(typed.documents, ("documents",))
    return MediaRequest("rerank", typed.model, fields, estimate=Units("search", searches),
                        input_tokens=_tokens(text), texts=tuple(texts))


def moderation(body: bytes) -> MediaRequest:
    fields, typed = decode_fields(body, _moderation_decoder)
    text = typed.input if isinstance(typed.input, str) else str(typed.input)
    images = [i for i, item in enumerate(typed.input)
              if isinstance(item, dict) and item.get("type") == "image_url"] \
        if isinstance(typed.input, list) else []
    return MediaRequest("moderations", typed.model or DEFAULT_MODERATION_MODEL, fields,
                        input_tokens=_tokens(text),
                        texts=tuple(_strings(typed.input, ("input",))),
                        unread=f"an image to moderate (input[{images[0]}])" if images else None)


def _strings(value: object, place: Place) -> Iterator[MediaText]:
    """Every string in a JSON value, with its place (an object's ``type`` tags excepted: a
    part's kind is not text sent to be read)."""
    if isinstance(value, str):
        yield MediaText(place, value)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, (*place, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            if key != "type" and not (key == "image_url" and isinstance(item, (str, dict))):
                yield from _strings(item, (*place, key))


def _tokens(text: str) -> int:
    return len(text) // 4 + 1
