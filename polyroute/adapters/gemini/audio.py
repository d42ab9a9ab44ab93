"""OpenAI's audio endpoints ⇄ Gemini's ``:generateContent``. Pure functions.

Speech (a TTS model, ``gemini-2.5-flash-preview-tts``):

    input              → contents[0].parts[0].text
    voice              → generationConfig.speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName
                         (a Gemini voice by name, or OpenAI's voices mapped, :data:`VOICES`)
    response_format    wav (the default here: Gemini has no MP3 encoder to lend) or pcm
    candidates[0].content.parts[].inlineData (audio/L16, 24 kHz mono, base64) → the bytes,
                         a WAV header in front for wav

Transcription and translation (any model that hears audio, ``gemini-2.5-flash``):

    file               → an inlineData part (its bytes, base64), then the instruction
    language, prompt   → said in the instruction
    temperature        → generationConfig.temperature
    response_format    json ({"text": …}) or text; the answer's text parts are the transcript
    stream             ``:streamGenerateContent?alt=sse``, each event's text relayed as a
                       ``transcript.text.delta`` event, then ``transcript.text.done``
"""

from __future__ import annotations

import base64
import mimetypes
import os
import re
import struct
from collections.abc import AsyncIterator, Mapping

import msgspec

from polyroute.adapters.gemini.errors import error_from_stream
from polyroute.adapters.images import ImageFields
from polyroute.adapters.rejections import unsupported
from polyroute.adapters.sse import sse_data
from polyroute.errors import (
    ContentFiltered,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRejected,
)
from polyroute.model.media import MediaRequest, Units, UploadedFile
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

MAX_INLINE_BYTES = 20 * 1024 * 1024
"""Gemini's limit on a request's inline data (its Files API takes more; not used here)."""
TRANSCRIBE = "Transcribe this audio word for word. Answer with the transcript only."
TRANSLATE = ("Translate the speech in this audio into English. Answer with the English text "
             "only.")
_TRANSCRIPT_FIELDS = frozenset({"language", "prompt", "temperature", "response_format"})
_WHY_NOT = {"timestamp_granularities[]": "it gives no timings",
            "include[]": "it gives no log-probabilities"}
_TRANSCRIPT_FORMATS = {"json": "application/json", "text": "text/plain; charset=utf-8"}
_AUDIO_TYPES = {".wav": "audio/wav", ".mp3": "audio/mp3", ".mpga": "audio/mp3",
                ".mpeg": "audio/mp3", ".aiff": "audio/aiff", ".aac": "audio/aac",
                ".ogg": "audio/ogg", ".flac": "audio/flac", ".m4a": "audio/mp4",
                ".mp4": "audio/mp4", ".webm": "audio/webm"}


class _Blob(msgspec.Struct):
    data: str = ""
    mimeType: str = ""


class _Part(msgspec.Struct):
    inlineData: _Blob | None = None
    text: str | None = None
    thought: bool | None = None


class _Content(msgspec.Struct):
    parts: list[_Part] = msgspec.field(default_factory=list)


class _Candidate(msgspec.Struct):
    content: _Content | None = None
    finishReason: str | None = None


class _Usage(msgspec.Struct):
    promptTokenCount: int = 0
    candidatesTokenCount: int = 0
    thoughtsTokenCount: int = 0


class _Feedback(msgspec.Struct):
    blockReason: str | None = None


class _Answer(msgspec.Struct):
    candidates: list[_Candidate] = msgspec.field(default_factory=list)
    usageMetadata: _Usage | None = None
    promptFeedback: _Feedback | None = None


_answer = msgspec.json.Decoder(_Answer)
_str = msgspec.json.Decoder(str | None)
_text = msgspec.json.Encoder()


class _Transcript(msgspec.Struct):
    text: str


# -- speech ---------------------------------------------------------------------------------

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
    answer = _decode(body, deployment)
    for candidate in answer.candidates:
        for part in candidate.content.parts if candidate.content else ():
            blob = part.inlineData
            if blob is not None and blob.data and blob.mimeType.startswith("audio/"):
                pcm = _b64(blob.data, deployment)
                audio = pcm if wanted == "pcm" else wav(pcm, _rate(blob.mimeType))
                return audio, SPEECH_FORMATS[wanted], _usage(answer)
    raise _nothing(answer, "audio", deployment)


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


# -- transcription ----------------------------------------------------------------------------

def transcript_body(request: MediaRequest, deployment: str,
                    drop: frozenset[str]) -> tuple[bytes, str]:
    """The ``generateContent`` body for a transcription or translation upload (the audio
    read from its spooled file), and the response format asked for."""
    form = request.form
    assert form is not None  # an upload endpoint always has its form
    for name, value in form.fields:
        if name == "stream" and value in ("true", "false"):
            continue  # a stream is translated from streamGenerateContent (TranscriptEvents)
        if name not in _TRANSCRIPT_FIELDS and name not in drop:
            raise unsupported(VENDOR, name, deployment, _WHY_NOT.get(name, ""))
    wanted = form.field("response_format") or "json"
    if wanted not in _TRANSCRIPT_FORMATS:
        raise UpstreamRejected(
            f"Invalid 'response_format' for deployment '{deployment}': Gemini answers a "
            f"transcript as text, which polyroute serves as {' or '.join(_TRANSCRIPT_FORMATS)}"
            f", not '{wanted}' (no timings).", param="response_format",
            code="unsupported_value", deployment=deployment)
    audio = next(f for f in form.files if f.name == "file")
    if audio.size > MAX_INLINE_BYTES:
        raise UpstreamRejected(
            f"The file is {audio.size} bytes; Gemini takes at most {MAX_INLINE_BYTES} bytes "
            f"of audio inline (deployment '{deployment}').", param="file",
            code="file_too_large", deployment=deployment)
    instruction = TRANSLATE if request.endpoint == "audio.translations" else TRANSCRIBE
    language = form.field("language")
    if language:
        instruction += f" The audio is in the language '{language}'."
    prompt = form.field("prompt")
    if prompt:
        instruction += f" Context, and the spelling to follow: {prompt}"
    config: dict[str, object] = {}
    temperature = form.field("temperature")
    if temperature:
        try:
            config["temperature"] = float(temperature)
        except ValueError:
            raise UpstreamRejected(f"Invalid 'temperature': '{temperature}' is not a number.",
                                   param="temperature", deployment=deployment) from None
    parts = [{"inlineData": {"mimeType": audio_type(audio), "data": _read_b64(audio.path)}},
             {"text": instruction}]
    body: dict[str, object] = {"contents": [{"role": "user", "parts": parts}]}
    if config:
        body["generationConfig"] = config
    return msgspec.json.encode(body), wanted


def transcript_answer(body: bytes, wanted: str,
                      deployment: str) -> tuple[bytes, str, Usage | None]:
    """OpenAI's transcript (``{"text": …}`` or the bare text) and the usage."""
    answer = _decode(body, deployment)
    texts = [part.text for candidate in answer.candidates[:1]
             for part in (candidate.content.parts if candidate.content else ())
             if part.text and not part.thought]
    if not texts:
        raise _nothing(answer, "transcript", deployment)
    text = "".join(texts).strip()
    out = _text.encode(_Transcript(text)) if wanted == "json" else (text + "\n").encode()
    return out, _TRANSCRIPT_FORMATS[wanted], _usage(answer)


class _TokenUsage(msgspec.Struct):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    type: str = "tokens"


class _Transcribed(msgspec.Struct):
    type: str
    text: str
    usage: _TokenUsage | None = None


class _Delta(msgspec.Struct):
    delta: str
    type: str = "transcript.text.delta"


class TranscriptEvents:
    """Gemini's ``streamGenerateContent`` events, relayed as OpenAI's streamed transcript
    (a :class:`~polyroute.adapters.media_stream.Meter`): each event's text as a
    ``transcript.text.delta``, then ``transcript.text.done`` with the whole text and the last
    ``usageMetadata``. A stream that ends before a finish reason, or an error event, is
    raised, never finished."""

    def __init__(self, deployment: str) -> None:
        self._deployment = deployment
        self.usage: Usage | None = None
        self.units: Units | None = None  # billed by Gemini's tokens

    def relay(self, content_type: str, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return self._events(body)

    async def _events(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        text: list[str] = []
        finished = False
        async for batch in sse_data(body):
            out: list[bytes] = []
            for data in batch:
                error = error_from_stream(data, self._deployment)
                if error is not None:
                    if out:
                        yield b"".join(out)
                    raise error
                answer = _decode(data, self._deployment)
                self.usage = _usage(answer) or self.usage
                for candidate in answer.candidates[:1]:
                    finished = finished or candidate.finishReason is not None
                    for part in candidate.content.parts if candidate.content else ():
                        if part.text and not part.thought:
                            text.append(part.text)
                            out.append(_event(_Delta(part.text)))
            if out:
                yield b"".join(out)
        if not finished:
            raise UpstreamProtocolError("the transcript stream ended before its finish reason",
                                        deployment=self._deployment)
        usage = self.usage
        counted = None if usage is None else _TokenUsage(
            usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
        yield _event(_Transcribed("transcript.text.done", "".join(text), counted))


def _event(event: msgspec.Struct) -> bytes:
    return b"data: " + _text.encode(event) + b"\n\n"


def audio_type(file: UploadedFile) -> str:
    """The upload's audio type as Gemini names it: its part's type when it says one, else by
    the file name's extension."""
    given = file.content_type.partition(";")[0].strip().lower()
    if given.startswith("audio/"):
        return "audio/mp3" if given in ("audio/mpeg", "audio/mpga") else given
    extension = os.path.splitext(file.filename)[1].lower()
    return _AUDIO_TYPES.get(extension) or mimetypes.guess_type(file.filename)[0] \
        or "audio/wav"


def _read_b64(path: str) -> str:
    with open(path, "rb") as audio:
        return base64.b64encode(audio.read()).decode()


# -- shared -----------------------------------------------------------------------------------

def _string(fields: Mapping[str, msgspec.Raw], name: str, deployment: str) -> str:
    try:
        value = _str.decode(fields[name]) if name in fields else None
    except msgspec.DecodeError:
        value = None
    if value is None:
        raise UpstreamRejected(f"Invalid '{name}': expected a string.", param=name,
                               deployment=deployment)
    return value


def _decode(body: bytes, deployment: str) -> _Answer:
    try:
        return _answer.decode(body)
    except msgspec.DecodeError as exc:
        raise UpstreamProtocolError(f"unreadable Gemini answer: {exc}",
                                    deployment=deployment) from exc


def _b64(data: str, deployment: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except ValueError as exc:
        raise UpstreamProtocolError(f"Gemini's audio is not base64: {exc}",
                                    deployment=deployment) from exc


def _usage(answer: _Answer) -> Usage | None:
    meta = answer.usageMetadata
    if meta is None:
        return None
    output = meta.candidatesTokenCount + meta.thoughtsTokenCount
    return Usage(prompt_tokens=meta.promptTokenCount, completion_tokens=output,
                 total_tokens=meta.promptTokenCount + output)


def _nothing(answer: _Answer, what: str, deployment: str) -> UpstreamError:
    """An answer without the audio or text asked for: blocked (a content filter), or the
    model said something else."""
    blocked = answer.promptFeedback.blockReason if answer.promptFeedback else None
    finish = next((c.finishReason for c in answer.candidates if c.finishReason), None)
    if blocked or finish in ("SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII",
                             "IMAGE_SAFETY", "RECITATION"):
        return ContentFiltered(f"Gemini returned no {what}: blocked ({blocked or finish})",
                               deployment=deployment)
    return UpstreamProtocolError(f"Gemini returned no {what} (finish reason "
                                 f"{finish or 'none'})", deployment=deployment)
