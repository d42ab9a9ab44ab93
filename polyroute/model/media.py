"""Media endpoints (issue 16 items 1, 2, 7): images, audio, rerank and moderation.

They are passed through, not translated: the request keeps the client's own fields (a JSON
body's top-level fields, or a multipart form whose files are spooled to disk), the answer the
upstream's bytes. polyroute reads only what routing, limits and billing need: the model, and
the units the request is billed by besides tokens (images, seconds of audio, characters,
searches)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import msgspec

from polyroute.model.usage import Usage

MEDIA_PATHS: Mapping[str, str] = MappingProxyType({
    "images.generations": "/images/generations",
    "images.edits": "/images/edits",
    "audio.transcriptions": "/audio/transcriptions",
    "audio.translations": "/audio/translations",
    "audio.speech": "/audio/speech",
    "rerank": "/rerank",
    "moderations": "/moderations",
})
"""Endpoint name (the ledger's ``endpoint``) → the operation's path after a base URL."""


class Units(msgspec.Struct, frozen=True):
    """What a request is billed by besides tokens: ``quantity`` of ``unit``.

    Units are ``image:<size>[:<quality>]``, ``second`` (of audio), ``character`` (spoken) and
    ``search`` (a rerank query); a price lists them by name, and a name not listed is looked
    up without its last ``:part`` (``image:1024x1024:hd`` → ``image:1024x1024`` → ``image``)."""

    unit: str
    quantity: float


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file part of a multipart request, spooled to disk as it arrived."""

    name: str
    """The form field (``file``, ``image``, ``image[]``, ``mask``)."""
    filename: str
    content_type: str
    path: str
    size: int


@dataclass(frozen=True, slots=True)
class Form:
    """A multipart request's parts in the client's order, ``model`` left out (each attempt
    sends its deployment's)."""

    fields: tuple[tuple[str, str], ...]
    files: tuple[UploadedFile, ...]

    def field(self, name: str) -> str | None:
        return next((value for key, value in self.fields if key == name), None)


Place = tuple[str | int, ...]
"""Where a text sits in a media request: in a JSON body, its top-level field and the path
inside it (``("documents", 2)``, ``("input", 0, "text")``); in a form, ``("field", i)`` (the
i-th of ``Form.fields``) or ``("filename", i)`` (the i-th file's name)."""


@dataclass(frozen=True, slots=True)
class MediaText:
    """A text the request carries to the vendor (an image prompt, speech input, a rerank query
    or document, moderation input, a transcription prompt, a file's name), and where it sits:
    governance reads it, and puts a redacted one back in its place."""

    place: Place
    text: str


@dataclass(slots=True)
class MediaRequest:
    endpoint: str
    """A key of :data:`MEDIA_PATHS`."""
    model: str
    fields: Mapping[str, msgspec.Raw] | None = None
    """A JSON body's top-level fields, as sent (``model`` among them, replaced per attempt)."""
    form: Form | None = None
    """A multipart body's parts."""
    estimate: Units | None = None
    """The most the request may be billed for in units (a budget reserves it)."""
    fallback: Units | None = None
    """What it is billed for when the answer says nothing (a transcript as plain text): the
    upload's measure; None: ``estimate``."""
    fallback_estimated: bool = False
    """``fallback`` is a guess (the upload's duration could not be read from its headers)."""
    input_tokens: int = 0
    """About how many tokens the request's text is (rate limits count them)."""
    texts: tuple[MediaText, ...] = ()
    """Every text it carries to the vendor, for governance (set by the surface's decoder)."""
    unread: str | None = None
    """What it carries that polyroute cannot read, named for a refusal (``the uploaded file
    'talk.wav'``, ``an image to moderate (input[1])``); None: nothing."""


@dataclass(frozen=True, slots=True)
class MediaResponse:
    """A whole answer: the upstream's bytes, and what they are billed by."""

    body: bytes
    content_type: str
    usage: Usage | None = None
    """Tokens, where the upstream counts them (gpt-image-1, gpt-4o-transcribe, Jina)."""
    units: Units | None = None
    """Units measured from the answer (or the upload); None: none to bill."""
