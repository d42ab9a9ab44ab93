"""OpenAI's speech ⇄ a Gemini TTS model (``gemini-2.5-flash-preview-tts``) through
``:generateContent``. Pure functions.

    input              → contents[0].parts[0].text
    voice              → generationConfig.speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName
                         (a Gemini voice by name, or OpenAI's voices mapped, :data:`VOICES`)
    response_format    wav (the default here: Gemini has no MP3 encoder to lend) or pcm
    candidates[0].content.parts[].inlineData (audio/L16, 24 kHz mono, base64) → the bytes,
                         a WAV header in front for wav
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Mapping

import msgspec

from polyroute.adapters.gemini.answer import decode_answer, nothing
from polyroute.adapters.images import ImageFields
from polyroute.errors import UpstreamProtocolError, UpstreamRejected
from polyroute.model.media import MediaRequest
from polyroute.model.usage import Usage

VENDOR = "Gemini"

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
_DEFAULT_RATE = 24_000

_SPEECH = ImageFields(VENDOR, frozenset({"model", "input", "voice", "response_format"}), {
    "speed": frozenset({b"1", b"1.0", b"null"}),
    "stream_format": frozenset({b'"audio"', b"null"}),
    "instructions": frozenset({b'""', b"null"}),
}, {
    "speed": "Gemini's voices have no speed setting",
    "stream_format": "the audio comes back whole, as bytes (stream_format 'audio')",
    "instructions": "Gemini reads the style from the text itself: put it in 'input' "
                    "(e.g. 'Say cheerfully: …')",
})

_str = msgspec.json.Decoder(str | None)


def speech_body(request: MediaRequest, deployment: str,
                drop: frozenset[str]) -> tuple[bytes, str]:
    """The ``generateContent`` body for OpenAI's speech request, and the format the answer
    is to be relayed in."""
    fields = _SPEECH.check(request, deployment, drop)
    text = _string(fields, "input", deployment)
    voice = _string(fields, "voice", deployment) if "voice" in fields else None
    wanted = _string(fields, "response_format", deployment) if "response_format" in fields \
        else None
    wanted = wanted or "wav"
    if wanted not in SPEECH_FORMATS:
        raise UpstreamRejected(
            f"Invalid 'response_format' for deployment '{deployment}': Gemini's speech comes "
            f"back as PCM, which polyroute serves as {' or '.join(SPEECH_FORMATS)}, not "
            f"'{wanted}'.", param="response_format", code="unsupported_value",
            deployment=deployment)
    config: dict[str, object] = {"responseModalities": ["AUDIO"]}
    if voice:
        name = VOICES.get(voice.lower())
        if name is None:
            raise UpstreamRejected(
                f"Invalid 'voice' for deployment '{deployment}': '{voice}' is none of "
                f"Gemini's voices ({', '.join(GEMINI_VOICES)}) nor of OpenAI's that polyroute "
                "maps to them.", param="voice", code="unsupported_value", deployment=deployment)
        config["speechConfig"] = {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": name}}}
    body = {"contents": [{"role": "user", "parts": [{"text": text}]}],
            "generationConfig": config}
    return msgspec.json.encode(body), wanted


def speech_answer(body: bytes, wanted: str,
                  deployment: str) -> tuple[bytes, str, Usage | None]:
    """The audio in the format asked for, its content type, and the usage (Gemini counts
    the audio as output tokens)."""
    answer = decode_answer(body, deployment)
    for candidate in answer.candidates:
        for part in candidate.parts:
            blob = part.inlineData
            if blob is not None and blob.data and blob.mimeType.startswith("audio/"):
                pcm = _b64(blob.data, deployment)
                audio = pcm if wanted == "pcm" else wav(pcm, _rate(blob.mimeType))
                return audio, SPEECH_FORMATS[wanted], answer.usage()
    raise nothing(answer, "audio", deployment)


def wav(pcm: bytes, rate: int, channels: int = 1, width: int = 2) -> bytes:
    """A WAV file of 16-bit PCM: the 44-byte RIFF header, then the samples."""
    block = channels * width
    return (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, width * 8)
            + b"data" + struct.pack("<I", len(pcm)) + pcm)


def _rate(mime: str) -> int:
    """``audio/L16;codec=pcm;rate=24000`` → 24000."""
    found = re.search(r"rate=(\d+)", mime)
    return int(found.group(1)) if found else _DEFAULT_RATE


def _string(fields: Mapping[str, msgspec.Raw], name: str, deployment: str) -> str:
    try:
        value = _str.decode(fields[name]) if name in fields else None
    except msgspec.DecodeError:
        value = None
    if value is None:
        raise UpstreamRejected(f"Invalid '{name}': expected a string.", param=name,
                               deployment=deployment)
    return value


def _b64(data: str, deployment: str) -> bytes:
    # Protobuf's JSON writes bytes in the standard alphabet but reads either; so do we.
    try:
        return base64.b64decode(data.replace("-", "+").replace("_", "/"), validate=True)
    except ValueError as exc:
        raise UpstreamProtocolError(f"Gemini's audio is not base64: {exc}",
                                    deployment=deployment) from exc
