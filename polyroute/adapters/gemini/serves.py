"""Which Gemini deployment can serve a media request, known before anything is sent
(``ProtocolSpec.serves``): its model's kind, read from its id (an image model images, a TTS
model speech, the others text), and whether ``generateContent`` can carry what the OpenAI
request asks (no MP3, no mask, no timings …). Routing skips a deployment this refuses, with
the reason, and tries the group's next one; the translations (:mod:`.media`,
:mod:`.speech`, :mod:`.transcripts`) build bodies only for requests that passed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from polyroute.adapters.images import EDIT_IMAGES, ImageFields, edit_refusal
from polyroute.adapters.spec import Unserved
from polyroute.model.media import MediaRequest
from polyroute.model.upstream import Deployment

VENDOR = "Gemini"
MAX_INLINE_BYTES = 20 * 1024 * 1024
"""Gemini's limit on a request's inline data (its Files API takes more; not used here)."""

# -- images ------------------------------------------------------------------------------------

_IMAGE_WHY = {
    "n": "an image model answers one image a request",
    "quality": "it has no quality setting (choose the model instead)",
    "response_format": "the image comes back as bytes: ask for b64_json",
}
IMAGE_FIELDS = ImageFields(VENDOR, frozenset({"model", "prompt", "size", "user"}), {
    "n": frozenset({b"1", b"null"}),
    "quality": frozenset({b'"standard"', b'"auto"', b"null"}),
    "response_format": frozenset({b'"b64_json"', b"null"}),
    "style": frozenset({b"null"}),
}, _IMAGE_WHY)
"""``user`` (an end-user id for OpenAI's abuse monitoring) has no Gemini field: not sent."""
_EDIT_MAPPED = frozenset({"prompt", "size", "user"})
_EDIT_NEUTRAL: Mapping[str, frozenset[str]] = {
    "n": frozenset({"1"}), "quality": frozenset({"standard", "auto"}),
    "response_format": frozenset({"b64_json"}),
}
_EDIT_WHY = {**_IMAGE_WHY, "mask": "it edits from the prompt alone, without a mask"}

# -- speech ------------------------------------------------------------------------------------

GEMINI_VOICES = (
    "Zephyr", "Puck", "Charon", "Kore", "Fenrir", "Leda", "Orus", "Aoede", "Callirrhoe",
    "Autonoe", "Enceladus", "Iapetus", "Umbriel", "Algieba", "Despina", "Erinome", "Algenib",
    "Rasalgethi", "Laomedeia", "Achernar", "Alnilam", "Schedar", "Gacrux", "Pulcherrima",
    "Achird", "Zubenelgenubi", "Vindemiatrix", "Sadachbia", "Sadaltager", "Sulafat")
"""Gemini's prebuilt TTS voices (ai.google.dev, speech generation)."""
VOICES: Mapping[str, str] = {
    **{name.lower(): name for name in GEMINI_VOICES},
    # OpenAI's voices, so that a client written for OpenAI works unchanged: a fixed choice,
    # not a likeness (docs/endpoints.md lists it).
    "alloy": "Zephyr", "ash": "Puck", "ballad": "Charon", "coral": "Kore", "echo": "Fenrir",
    "fable": "Leda", "onyx": "Orus", "nova": "Aoede", "sage": "Callirrhoe",
    "shimmer": "Autonoe", "verse": "Enceladus", "marin": "Iapetus", "cedar": "Umbriel",
}
SPEECH_FORMATS: Mapping[str, str] = {"wav": "audio/wav", "pcm": "audio/pcm"}
"""What Gemini's PCM can become without an encoder: ``pcm`` is OpenAI's own raw format
(24 kHz, 16-bit signed little-endian, mono), exactly what Gemini returns."""
SPEECH_FIELDS = ImageFields(VENDOR, frozenset({"model", "input", "voice", "response_format"}), {
    "speed": frozenset({b"1", b"1.0", b"null"}),
    "stream_format": frozenset({b'"audio"', b"null"}),
    "instructions": frozenset({b'""', b"null"}),
}, {
    "speed": "Gemini's voices have no speed setting",
    "stream_format": "the audio comes back whole, as bytes (stream_format 'audio')",
    "instructions": "Gemini reads the style from the text itself: put it in 'input' "
                    "(e.g. 'Say cheerfully: …')",
})

# -- transcripts -------------------------------------------------------------------------------

_TRANSCRIPT_FIELDS = frozenset({"language", "prompt", "temperature", "response_format"})
_TRANSCRIPT_WHY = {"timestamp_granularities[]": "it gives no timings",
                   "include[]": "it gives no log-probabilities"}
TRANSCRIPT_FORMATS: Mapping[str, str] = {"json": "application/json",
                                         "text": "text/plain; charset=utf-8"}

_str = msgspec.json.Decoder(str | None)


def serves(request: MediaRequest, deployment: Deployment) -> Unserved | None:
    """Why this Gemini deployment cannot serve the request, or None."""
    endpoint, model = request.endpoint, deployment.model
    drop = deployment.endpoint.quirks.drop_params
    name = model.lower()
    if endpoint.startswith("images."):
        if "image" not in name:
            return Unserved(f"'{model}' is not a Gemini image model")
        return IMAGE_FIELDS.refusal(request, drop) if endpoint == "images.generations" \
            else _edit(request, drop)
    if endpoint == "audio.speech":
        if "tts" not in name:
            return Unserved(f"'{model}' is not a Gemini TTS model")
        return SPEECH_FIELDS.refusal(request, drop) or _speech(request)
    if "tts" in name or "image" in name:
        return Unserved(f"'{model}' does not write text")
    return _transcript(request, drop)


def _edit(request: MediaRequest, drop: frozenset[str]) -> Unserved | None:
    form = request.form
    if form is None:
        return None  # the surface always spools an upload's form
    return edit_refusal(VENDOR, form, _EDIT_MAPPED, _EDIT_NEUTRAL, _EDIT_WHY, drop) \
        or _inline((f.size for f in form.files if f.name in EDIT_IMAGES), "image", "images")


def _speech(request: MediaRequest) -> Unserved | None:
    fields = request.fields or {}
    wanted = _text(fields.get("response_format"))
    if wanted is not None and wanted not in SPEECH_FORMATS:
        return Unserved(f"Gemini's speech comes back as PCM, which polyroute serves as "
                        f"{' or '.join(SPEECH_FORMATS)}, not '{wanted}'",
                        "response_format", "unsupported_value")
    voice = _text(fields.get("voice"))
    if voice and voice.lower() not in VOICES:
        return Unserved(f"'{voice}' is none of Gemini's voices ({', '.join(GEMINI_VOICES)}) "
                        "nor of OpenAI's that polyroute maps to them", "voice",
                        "unsupported_value")
    return None


def _transcript(request: MediaRequest, drop: frozenset[str]) -> Unserved | None:
    form = request.form
    if form is None:
        return None
    for name, value in form.fields:
        if name == "stream" and value in ("true", "false"):
            continue  # a stream is translated from streamGenerateContent (TranscriptEvents)
        if name not in _TRANSCRIPT_FIELDS and name not in drop:
            return Unserved.parameter(VENDOR, name, _TRANSCRIPT_WHY.get(name, ""))
    wanted = form.field("response_format") or "json"
    if wanted not in TRANSCRIPT_FORMATS:
        return Unserved(f"Gemini answers a transcript as text, which polyroute serves as "
                        f"{' or '.join(TRANSCRIPT_FORMATS)}, not '{wanted}' (no timings)",
                        "response_format", "unsupported_value")
    return _inline((f.size for f in form.files if f.name == "file"), "file", "audio")


def _inline(sizes: Iterable[int], param: str, what: str) -> Unserved | None:
    total = sum(sizes)
    if total <= MAX_INLINE_BYTES:
        return None
    return Unserved(f"the {what}: {total} bytes, more than the {MAX_INLINE_BYTES} Gemini "
                    "takes inline", param, "file_too_large")


def _text(raw: msgspec.Raw | None) -> str | None:
    """A JSON field's string value; None when absent or not a string (the translation
    names a value of the wrong type)."""
    if raw is None:
        return None
    try:
        return _str.decode(raw)
    except msgspec.DecodeError:
        return None
