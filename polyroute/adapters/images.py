"""What the adapters that translate OpenAI's image generation share: the check of the
request's fields against what a vendor maps, which routing runs (``ProtocolSpec.serves``;
Gemini's speech uses it too), and OpenAI's ``ImagesResponse`` they answer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from polyroute.adapters.spec import Unserved
from polyroute.model.media import Form, MediaRequest

EDIT_IMAGES = frozenset({"image", "image[]"})
"""The form's files an image edit sends to the vendor, in the form's order."""


class ImageFields(msgspec.Struct, frozen=True):
    """One vendor's reading of the fields of an OpenAI media body (a JSON one: images,
    speech)."""

    vendor: str
    mapped: frozenset[str]
    """Fields the vendor's body carries."""
    neutral: Mapping[str, frozenset[bytes]]
    """Values of the other fields that ask for nothing (the bytes as sent, e.g. ``null``)."""
    why: Mapping[str, str]
    """Why a field is refused, where there is more to say than its name."""

    def refusal(self, request: MediaRequest, drop: frozenset[str]) -> Unserved | None:
        """The first field the vendor cannot carry, as routing's reason to skip a deployment
        (``ProtocolSpec.serves``); None: it carries them all."""
        for name, raw in (request.fields or {}).items():
            if name not in self.mapped and name not in drop \
                    and bytes(raw).strip() not in self.neutral.get(name, ()):
                return Unserved.parameter(self.vendor, name, self.why.get(name, ""))
        return None


def edit_refusal(vendor: str, form: Form, mapped: frozenset[str],
                 neutral: Mapping[str, frozenset[str]], why: Mapping[str, str],
                 drop: frozenset[str]) -> Unserved | None:
    """The first field or file of an image edit's form the vendor cannot carry (its
    ``mapped`` fields, the ``neutral`` values of others, and the images themselves are
    carried), as routing's reason to skip a deployment; None: it carries them all."""
    for name, value in form.fields:
        if name not in mapped and name not in drop and value not in neutral.get(name, ()):
            return Unserved.parameter(vendor, name, why.get(name, ""))
    for file in form.files:
        if file.name not in EDIT_IMAGES and file.name not in drop:
            return Unserved.parameter(vendor, file.name, why.get(file.name, ""))
    return None


class _Image(msgspec.Struct):
    b64_json: str


class _Images(msgspec.Struct):
    created: int
    data: list[_Image]


def images_response(created: int, images: Iterable[str]) -> bytes:
    """OpenAI's ``ImagesResponse`` of base64 images."""
    return msgspec.json.encode(_Images(created, [_Image(data) for data in images]))
