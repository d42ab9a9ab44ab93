"""OpenAI's speech ⇄ a Gemini TTS model (``gemini-2.5-flash-preview-tts``) through
``:generateContent``. Pure functions.

    input              → contents[0].parts[0].text
    voice              → generationConfig.speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName
                         (a Gemini voice by name, or OpenAI's voices mapped,
                         :data:`.serves.VOICES`)
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
from polyroute.adapters.gemini.serves import SPEECH_FORMATS, VOICES
from polyroute.errors import UpstreamProtocolError, UpstreamRejected
from polyroute.model.media import MediaRequest
from polyroute.model.usage import Usage

_DEFAULT_RATE = 24_000

_str = msgspec.json.Decoder(str | None)


def speech_body(request: MediaRequest, deployment: str) -> tuple[bytes, str]:
    """The ``generateContent`` body for OpenAI's speech request, and the format the answer
    is to be relayed in. Routing has checked its options (``serves.serves``): the format is
    one of :data:`SPEECH_FORMATS`, the voice one of :data:`VOICES`."""
    fields = request.fields or {}
    text = _string(fields, "input", deployment)
    voice = _string(fields, "voice", deployment) if "voice" in fields else None
    wanted = _string(fields, "response_format", deployment) if "response_format" in fields \
        else None
    wanted = wanted or "wav"
    config: dict[str, object] = {"responseModalities": ["AUDIO"]}
    if voice:
        config["speechConfig"] = {"voiceConfig": {"prebuiltVoiceConfig": {
            "voiceName": VOICES[voice.lower()]}}}
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
