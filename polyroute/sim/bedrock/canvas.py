"""The body of ``InvokeModel`` for Amazon's image models (Nova Canvas; Titan Image Generator v2
reads the same task types), checked as Bedrock checks it: a JSON schema per task type, whose
failures are ``ValidationException``s worded as Bedrock words them ("Malformed input request:
#/path: …"). Checked: TEXT_IMAGE, IMAGE_VARIATION, INPAINTING and OUTPAINTING, the fields and
limits of Amazon's Nova Canvas reference (1 to 5 reference images, PNG or JPEG as base64;
texts of 1 to 1024 characters; similarityStrength 0.2 to 1.0; exactly one of maskImage and
maskPrompt; numberOfImages 1 to 5). Other task types are refused."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from polyroute.sim.bedrock.errors import BedrockError, validation

MOST_IMAGES = 5
MOST_TEXT = 1024
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
_CONFIG_KEYS = frozenset({"numberOfImages", "width", "height", "quality", "cfgScale", "seed"})
_TEXTS = ("text", "negativeText")
_TASKS: Mapping[str, tuple[str, frozenset[str]]] = {
    "TEXT_IMAGE": ("textToImageParams", frozenset({
        "text", "negativeText", "style", "conditionImage", "controlMode", "controlStrength"})),
    "IMAGE_VARIATION": ("imageVariationParams", frozenset({
        "images", "text", "negativeText", "similarityStrength", "style"})),
    "INPAINTING": ("inPaintingParams", frozenset({
        "image", "text", "negativeText", "maskImage", "maskPrompt", "returnMask"})),
    "OUTPAINTING": ("outPaintingParams", frozenset({
        "image", "text", "negativeText", "maskImage", "maskPrompt", "returnMask",
        "outPaintingMode"})),
}


def images_asked(body: object) -> int:
    """How many images the request asks for (``numberOfImages``, 1 by default); raises
    Bedrock's ValidationException for a body its schema refuses."""
    if not isinstance(body, dict):
        raise _malformed("#", "expected type: JSONObject")
    task = body.get("taskType")
    if not isinstance(task, str) or task not in _TASKS:
        raise _malformed("#/taskType", f"{task!r} is not a valid enum value")
    key, allowed = _TASKS[task]
    _keys(body, frozenset({"taskType", key, "imageGenerationConfig"}), "#")
    params = body.get(key)
    if not isinstance(params, dict):
        raise _malformed("#", f"required key [{key}] not found")
    where = f"#/{key}"
    _keys(params, allowed, where)
    for name in _TEXTS:
        if name in params:
            _text(params[name], f"{where}/{name}")
    if task == "TEXT_IMAGE" and "text" not in params:
        raise _malformed(where, "required key [text] not found")
    if task == "IMAGE_VARIATION":
        _variation(params, where)
    if task in ("INPAINTING", "OUTPAINTING"):
        _painting(params, where, task)
    config = body.get("imageGenerationConfig", {})
    if not isinstance(config, dict):
        raise _malformed("#/imageGenerationConfig", "expected type: JSONObject")
    _keys(config, _CONFIG_KEYS, "#/imageGenerationConfig")
    count = config.get("numberOfImages", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MOST_IMAGES:
        raise _malformed("#/imageGenerationConfig/numberOfImages",
                         f"{count} is not in 1..{MOST_IMAGES}")
    return count


def _variation(params: dict[str, Any], where: str) -> None:
    images = params.get("images")
    if not isinstance(images, list):
        raise _malformed(where, "required key [images] not found")
    if not 1 <= len(images) <= MOST_IMAGES:
        raise _malformed(f"{where}/images", f"expected between 1 and {MOST_IMAGES} items, "
                         f"found: {len(images)}")
    for i, image in enumerate(images):
        _image(image, f"{where}/images/{i}")
    strength = params.get("similarityStrength", 0.7)
    if isinstance(strength, bool) or not isinstance(strength, int | float) \
            or not 0.2 <= strength <= 1.0:
        raise _malformed(f"{where}/similarityStrength", f"{strength} is not in 0.2..1.0")


def _painting(params: dict[str, Any], where: str, task: str) -> None:
    if "image" not in params:
        raise _malformed(where, "required key [image] not found")
    _image(params["image"], f"{where}/image")
    masks = [name for name in ("maskImage", "maskPrompt") if name in params]
    if len(masks) != 1:
        raise validation(f"{task} takes exactly one of maskImage and maskPrompt, not "
                         f"{len(masks)}.")
    if "maskImage" in params:
        _image(params["maskImage"], f"{where}/maskImage")
    else:
        _text(params["maskPrompt"], f"{where}/maskPrompt")
    mode = params.get("outPaintingMode", "DEFAULT")
    if mode not in ("DEFAULT", "PRECISE"):
        raise _malformed(f"{where}/outPaintingMode", f"{mode!r} is not a valid enum value")


def _image(value: object, where: str) -> None:
    if not isinstance(value, str):
        raise _malformed(where, "expected type: String")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise validation(f"Invalid base64 image at {where}.") from None
    if not data.startswith(_IMAGE_MAGIC):
        raise validation(f"The image at {where} is neither PNG nor JPEG.")


def _text(value: object, where: str) -> None:
    if not isinstance(value, str):
        raise _malformed(where, "expected type: String")
    if not 1 <= len(value) <= MOST_TEXT:
        raise _malformed(where, f"expected length between 1 and {MOST_TEXT}, found "
                         f"{len(value)}")


def _keys(found: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    extra = sorted(set(found) - allowed)
    if extra:
        raise _malformed(where, f"extraneous key [{extra[0]}] is not permitted")


def _malformed(where: str, problem: str) -> BedrockError:
    return validation(f"Malformed input request: {where}: {problem}, please reformat your "
                      "input and try again.")
