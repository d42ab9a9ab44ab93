"""OpenAI's image generation ⇄ Amazon's image models on Bedrock (Nova Canvas, Titan Image
Generator v2: ``InvokeModel``, ``POST /model/{modelId}/invoke``). Pure functions.

    prompt              → textToImageParams.text          (taskType TEXT_IMAGE)
    n                   → imageGenerationConfig.numberOfImages
    size (WxH)          → imageGenerationConfig.width, .height   (auto: the model's default)
    quality hd / high   → imageGenerationConfig.quality: premium (standard, auto: standard)
    response_format     b64_json only (the images come back as bytes)
    images[]            → data[].b64_json; a non-null ``error`` → a content-filter error
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from polyroute.adapters.rejections import unsupported
from polyroute.errors import ContentFiltered, UpstreamProtocolError
from polyroute.model.media import MediaRequest

VENDOR = "Bedrock (Amazon image models)"
_PREMIUM = frozenset({"hd", "high", "premium"})
_NEUTRAL: Mapping[str, frozenset[bytes]] = {
    "response_format": frozenset({b'"b64_json"', b"null"}),
    "style": frozenset({b"null"}),
}
_WHY = {"response_format": "the images come back as bytes: ask for b64_json"}
_MAPPED = frozenset({"model", "prompt", "n", "size", "quality", "user"})
"""``user`` (an end-user id for OpenAI's abuse monitoring) has no Bedrock field: not sent."""


class _Invoked(msgspec.Struct):
    images: list[str] = msgspec.field(default_factory=list)
    error: str | None = None


class _Image(msgspec.Struct):
    b64_json: str


class _Images(msgspec.Struct):
    created: int
    data: list[_Image]


_invoked = msgspec.json.Decoder(_Invoked)
_str = msgspec.json.Decoder(str | None)
_int = msgspec.json.Decoder(int | None)


def image_body(request: MediaRequest, deployment: str, drop: frozenset[str]) -> bytes:
    fields = request.fields or {}
    for name, raw in fields.items():
        if name in _MAPPED or name in drop or bytes(raw).strip() in _NEUTRAL.get(name, ()):
            continue
        raise unsupported(VENDOR, name, deployment, _WHY.get(name, ""))
    prompt = _str.decode(fields["prompt"]) if "prompt" in fields else None
    config: dict[str, object] = {
        "numberOfImages": (_int.decode(fields["n"]) if "n" in fields else None) or 1}
    size = _str.decode(fields["size"]) if "size" in fields else None
    width, sep, height = (size or "").partition("x")
    if sep and width.isdigit() and height.isdigit():
        config["width"], config["height"] = int(width), int(height)
    quality = _str.decode(fields["quality"]) if "quality" in fields else None
    config["quality"] = "premium" if quality in _PREMIUM else "standard"
    return msgspec.json.encode({"taskType": "TEXT_IMAGE", "textToImageParams": {"text": prompt},
                                "imageGenerationConfig": config})


def images_answer(body: bytes, deployment: str, created: int) -> tuple[bytes, int]:
    """OpenAI's ``ImagesResponse`` for the model's answer, and how many images it holds."""
    try:
        answer = _invoked.decode(body)
    except msgspec.DecodeError as exc:
        raise UpstreamProtocolError(f"unreadable Bedrock image answer: {exc}",
                                    deployment=deployment) from exc
    if answer.error or not answer.images:
        raise ContentFiltered(f"The model returned no image: {answer.error or 'none came back'}",
                              deployment=deployment)
    images = [_Image(data) for data in answer.images]
    return msgspec.json.encode(_Images(created, images)), len(images)
