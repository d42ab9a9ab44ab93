"""Which Bedrock deployment can serve a media request, known before anything is sent
(``ProtocolSpec.serves``): whether ``InvokeModel`` (Amazon's image models) or the Rerank API
can carry what the request asks. Routing skips a deployment this refuses, with the reason,
and tries the group's next one; the translations (:mod:`.media`) build bodies only for
requests that passed. Which model is an image or a rerank model is not checked here."""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import TypeVar

import msgspec

from polyroute.adapters.images import EDIT_IMAGES, ImageFields, edit_refusal
from polyroute.adapters.spec import Unserved
from polyroute.model.media import MediaRequest, UploadedFile
from polyroute.model.upstream import Deployment

VENDOR = "Bedrock (Amazon image models)"
_URL_WHY = "the images come back as bytes: ask for b64_json"
IMAGE_FIELDS = ImageFields(
    VENDOR,
    frozenset({"model", "prompt", "n", "size", "quality", "user"}),
    {"response_format": frozenset({b'"b64_json"', b"null"}), "style": frozenset({b"null"})},
    {"response_format": _URL_WHY})
"""``user`` (an end-user id for OpenAI's abuse monitoring) has no Bedrock field: not sent."""
T = TypeVar("T")
_int = msgspec.json.Decoder(int)
_str = msgspec.json.Decoder(str)
RERANK_MAPPED = frozenset({"model", "query", "documents", "top_n", "return_documents"})

# -- image edits: Nova Canvas's IMAGE_VARIATION ----------------------------------------------

MOST_IMAGES = 5
"""Nova Canvas's image variation takes 1 to 5 reference images, and every task answers 1 to
5 images (``numberOfImages``)."""
MOST_PROMPT_CHARS = 1024
"""Its ``text`` (generation's and a variation's) is 1 to 1024 characters."""
IMAGE_TYPES = frozenset({"image/png", "image/jpeg"})
"""The images it reads (each base64 in the JSON body)."""
_EDIT_MAPPED = frozenset({"prompt", "n", "size", "quality", "user"})
_EDIT_NEUTRAL: Mapping[str, frozenset[str]] = {"response_format": frozenset({"b64_json"})}
_EDIT_WHY = {
    "response_format": _URL_WHY,
    "mask": "Nova Canvas's inpainting mask is a black-and-white image (black: the area to "
            "change), OpenAI's marks the area by transparency, and polyroute does not "
            "redraw images; without a mask the edit is an image variation",
}


def serves(request: MediaRequest, deployment: Deployment) -> Unserved | None:
    """Why this Bedrock deployment cannot serve the request, or None."""
    drop = deployment.endpoint.quirks.drop_params
    if request.endpoint == "images.generations":
        fields = request.fields or {}
        return IMAGE_FIELDS.refusal(request, drop) or _limits(
            _decoded(_int, fields.get("n")), _decoded(_str, fields.get("prompt")) or "")
    if request.endpoint == "images.edits":
        return _edit(request, drop)
    for name, raw in (request.fields or {}).items():  # rerank
        if name not in RERANK_MAPPED and name not in drop and bytes(raw).strip() != b"null":
            return Unserved.parameter("Bedrock's Rerank API", name)
    return None


def _edit(request: MediaRequest, drop: frozenset[str]) -> Unserved | None:
    form = request.form
    if form is None:
        return None  # the surface always spools an upload's form
    refused = edit_refusal(VENDOR, form, _EDIT_MAPPED, _EDIT_NEUTRAL, _EDIT_WHY, drop)
    if refused is not None:
        return refused
    images = [file for file in form.files if file.name in EDIT_IMAGES]
    if len(images) > MOST_IMAGES:
        return Unserved(f"Nova Canvas varies 1 to {MOST_IMAGES} images, not {len(images)}",
                        "image", "unsupported_value")
    kind = next((k for k in map(_image_type, images)
                 if k.startswith("image/") and k not in IMAGE_TYPES), None)
    if kind is not None:
        return Unserved(f"Nova Canvas reads PNG and JPEG images, not {kind}", "image",
                        "unsupported_value")
    n = form.field("n")
    return _limits(int(n) if n and n.isdigit() else None, form.field("prompt") or "")


def _limits(n: int | None, prompt: str) -> Unserved | None:
    if n is not None and n > MOST_IMAGES:
        return Unserved(f"Nova Canvas answers 1 to {MOST_IMAGES} images a request, not {n}",
                        "n", "unsupported_value")
    if len(prompt) > MOST_PROMPT_CHARS:
        return Unserved(f"Nova Canvas takes a prompt of at most {MOST_PROMPT_CHARS} "
                        f"characters, not {len(prompt)}", "prompt", "unsupported_value")
    return None


def _decoded(decoder: msgspec.json.Decoder[T], raw: msgspec.Raw | None) -> T | None:
    """A JSON field's value; None when absent or of another type (the translation or the
    vendor names a value of the wrong type)."""
    if raw is None:
        return None
    try:
        return decoder.decode(raw)
    except msgspec.DecodeError:
        return None


def _image_type(file: UploadedFile) -> str:
    """The image's media type as the client declared it, else guessed from its file name;
    one that is no image type at all is left for Nova Canvas to judge (it reads the bytes)."""
    given = file.content_type.partition(";")[0].strip().lower()
    if given.startswith("image/"):
        return "image/jpeg" if given == "image/jpg" else given
    return mimetypes.guess_type(file.filename)[0] or ""
