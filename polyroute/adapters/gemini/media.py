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

import msgspec

from polyroute.adapters.gemini.answer import decode_answer
from polyroute.adapters.images import EDIT_IMAGES, images_response
from polyroute.errors import ContentFiltered
from polyroute.model.media import MediaRequest, UploadedFile
from polyroute.model.usage import Usage

_RATIOS = {"1:1": 1.0, "2:3": 2 / 3, "3:2": 3 / 2, "3:4": 3 / 4, "4:3": 4 / 3, "4:5": 4 / 5,
           "5:4": 5 / 4, "9:16": 9 / 16, "16:9": 16 / 9, "21:9": 21 / 9}

_str = msgspec.json.Decoder(str | None)


def image_body(request: MediaRequest) -> bytes:
    """``:generateContent`` for an image generation; routing has checked its fields
    (``serves.IMAGE_FIELDS``)."""
    fields = request.fields or {}
    prompt = _str.decode(fields["prompt"]) if "prompt" in fields else None
    config: dict[str, object] = {"responseModalities": ["IMAGE"]}
    ratio = aspect_ratio(_str.decode(fields["size"]) if "size" in fields else None)
    if ratio is not None:
        config["imageConfig"] = {"aspectRatio": ratio}
    return msgspec.json.encode({"contents": [{"role": "user", "parts": [{"text": prompt}]}],
                                "generationConfig": config})


def edit_body(request: MediaRequest) -> bytes:
    """``:generateContent`` for an image edit: the uploaded images as inlineData parts, then
    the prompt. Routing has checked the form (``serves``: no mask, no field Gemini has no
    setting for, at most its inline limit); a file the provider drops is not sent."""
    form = request.form
    assert form is not None  # an upload endpoint always has its form
    images = [file for file in form.files if file.name in EDIT_IMAGES]
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
