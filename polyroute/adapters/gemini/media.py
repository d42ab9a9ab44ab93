"""OpenAI's image generation and edits ⇄ a Gemini image model (``:generateContent`` with
``responseModalities: ["IMAGE"]``). Pure functions.

    image, image[]     → inlineData parts, in the form's order (edits; read from the spool)
    prompt             → a text part after them
    size (WxH)         → generationConfig.imageConfig.aspectRatio, the nearest Gemini offers
    n                  1 only: an image model answers one image a request
    response_format    b64_json only (the image comes back as bytes)
    candidates[].content.parts[].inlineData.data → data[].b64_json
    usageMetadata      → usage (Gemini bills images as output tokens)
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Mapping

import msgspec

from polyroute.adapters.gemini.answer import decode_answer
from polyroute.adapters.images import ImageFields, images_response
from polyroute.adapters.rejections import unsupported
from polyroute.errors import ContentFiltered, UpstreamRejected
from polyroute.model.media import MediaRequest, UploadedFile
from polyroute.model.usage import Usage

VENDOR = "Gemini"
_RATIOS = {"1:1": 1.0, "2:3": 2 / 3, "3:2": 3 / 2, "3:4": 3 / 4, "4:3": 4 / 3, "4:5": 4 / 5,
           "5:4": 5 / 4, "9:16": 9 / 16, "16:9": 16 / 9, "21:9": 21 / 9}
_NEUTRAL: Mapping[str, frozenset[bytes]] = {
    "n": frozenset({b"1", b"null"}),
    "quality": frozenset({b'"standard"', b'"auto"', b"null"}),
    "response_format": frozenset({b'"b64_json"', b"null"}),
    "style": frozenset({b"null"}),
}
_WHY = {
    "n": "an image model answers one image a request",
    "quality": "it has no quality setting (choose the model instead)",
    "response_format": "the image comes back as bytes: ask for b64_json",
}
_MAPPED = frozenset({"model", "prompt", "size", "user"})
"""``user`` (an end-user id for OpenAI's abuse monitoring) has no Gemini field: not sent."""
_FIELDS = ImageFields(VENDOR, _MAPPED, _NEUTRAL, _WHY)


_str = msgspec.json.Decoder(str | None)


def image_body(request: MediaRequest, deployment: str, drop: frozenset[str]) -> bytes:
    fields = _FIELDS.check(request, deployment, drop)
    prompt = _str.decode(fields["prompt"]) if "prompt" in fields else None
    config: dict[str, object] = {"responseModalities": ["IMAGE"]}
    ratio = aspect_ratio(_str.decode(fields["size"]) if "size" in fields else None)
    if ratio is not None:
        config["imageConfig"] = {"aspectRatio": ratio}
    return msgspec.json.encode({"contents": [{"role": "user", "parts": [{"text": prompt}]}],
                                "generationConfig": config})


_EDIT_NEUTRAL: Mapping[str, frozenset[str]] = {
    "n": frozenset({"1"}), "quality": frozenset({"standard", "auto"}),
    "response_format": frozenset({"b64_json"}),
}
_EDIT_WHY = {**_WHY, "mask": "it edits from the prompt alone, without a mask"}
MAX_INLINE_BYTES = 20 * 1024 * 1024
"""Gemini's limit on a request's inline data."""


def edit_body(request: MediaRequest, deployment: str, drop: frozenset[str]) -> bytes:
    """``:generateContent`` for an image edit: the uploaded images as inlineData parts, then
    the prompt. A mask, or a field Gemini has no setting for, is a 400 naming it."""
    form = request.form
    assert form is not None  # an upload endpoint always has its form
    for name, value in form.fields:
        if name in ("prompt", "size", "user") or name in drop \
                or value in _EDIT_NEUTRAL.get(name, ()):
            continue
        raise unsupported(VENDOR, name, deployment, _EDIT_WHY.get(name, ""))
    images = []
    for file in form.files:
        if file.name not in ("image", "image[]"):
            raise unsupported(VENDOR, file.name, deployment, _EDIT_WHY.get(file.name, ""))
        images.append(file)
    if sum(f.size for f in images) > MAX_INLINE_BYTES:
        raise UpstreamRejected(f"The images are more than Gemini takes inline "
                               f"({MAX_INLINE_BYTES} bytes; deployment '{deployment}').",
                               param="image", code="file_too_large", deployment=deployment)
    parts: list[dict[str, object]] = [{"inlineData": _inline(f)} for f in images]
    parts.append({"text": form.field("prompt") or ""})
    config: dict[str, object] = {"responseModalities": ["IMAGE"]}
    ratio = aspect_ratio(form.field("size"))
    if ratio is not None:
        config["imageConfig"] = {"aspectRatio": ratio}
    return msgspec.json.encode({"contents": [{"role": "user", "parts": parts}],
                                "generationConfig": config})


def _inline(file: UploadedFile) -> dict[str, str]:
    given = file.content_type.partition(";")[0].strip().lower()
    mime = given if given.startswith("image/") \
        else mimetypes.guess_type(file.filename)[0] or "image/png"
    with open(file.path, "rb") as image:
        return {"mimeType": mime, "data": base64.b64encode(image.read()).decode()}


def aspect_ratio(size: str | None) -> str | None:
    """Gemini's aspect ratio nearest ``WxH``; None for ``auto`` or no size."""
    width, sep, height = (size or "").partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or not int(height):
        return None
    wanted = int(width) / int(height)
    return min(_RATIOS, key=lambda name: abs(_RATIOS[name] - wanted))


def images_answer(body: bytes, deployment: str,
                  created: int) -> tuple[bytes, int, Usage | None]:
    """OpenAI's ``ImagesResponse`` for Gemini's answer, how many images it holds, and its
    usage. An answer without an image (the model only wrote text, or a safety block) is a
    content-filter error naming why."""
    answer = decode_answer(body, deployment)
    images, said, finish = [], [], None
    for candidate in answer.candidates:
        finish = finish or candidate.finishReason
        for part in candidate.parts:
            if part.inlineData is not None and part.inlineData.data:
                images.append(part.inlineData.data)
            elif part.text:
                said.append(part.text)
    if not images:
        why = " ".join(said)[:300] or f"finish reason {finish or 'none'}"
        raise ContentFiltered(f"The model returned no image: {why}", deployment=deployment)
    usage = answer.usage()
    return images_response(created, images), len(images), usage
