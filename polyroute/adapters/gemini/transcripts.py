"""OpenAI's transcription and translation ⇄ a Gemini model that hears audio
(``gemini-2.5-flash``) through ``:generateContent``. Pure functions, and the translation of a
streamed answer.

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
from collections.abc import AsyncIterator

import msgspec

from polyroute.adapters.gemini.answer import decode_answer, nothing
from polyroute.adapters.gemini.errors import error_from_stream
from polyroute.adapters.gemini.serves import TRANSCRIPT_FORMATS
from polyroute.adapters.sse import sse_data
from polyroute.errors import UpstreamProtocolError, UpstreamRejected
from polyroute.model.media import MediaRequest, Units, UploadedFile
from polyroute.model.usage import Usage

TRANSCRIBE = "Transcribe this audio word for word. Answer with the transcript only."
TRANSLATE = ("Translate the speech in this audio into English. Answer with the English text "
             "only.")
_AUDIO_TYPES = {".wav": "audio/wav", ".mp3": "audio/mp3", ".mpga": "audio/mp3",
                ".mpeg": "audio/mp3", ".aiff": "audio/aiff", ".aac": "audio/aac",
                ".ogg": "audio/ogg", ".flac": "audio/flac", ".m4a": "audio/mp4",
                ".mp4": "audio/mp4", ".webm": "audio/webm"}

_text = msgspec.json.Encoder()


class _Transcript(msgspec.Struct):
    text: str


def transcript_body(request: MediaRequest, deployment: str) -> tuple[bytes, str]:
    """The ``generateContent`` body for a transcription or translation upload (the audio
    read from its spooled file), and the response format asked for. Routing has checked the
    form (``serves``: only fields Gemini carries, a format of :data:`TRANSCRIPT_FORMATS`, at
    most its inline limit)."""
    form = request.form
    assert form is not None  # an upload endpoint always has its form
    wanted = form.field("response_format") or "json"
    audio = next(f for f in form.files if f.name == "file")
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
    answer = decode_answer(body, deployment)
    texts = [part.text for candidate in answer.candidates[:1]
             for part in candidate.parts
             if part.text and not part.thought]
    if not texts:
        raise nothing(answer, "transcript", deployment)
    text = "".join(texts).strip()
    out = _text.encode(_Transcript(text)) if wanted == "json" else (text + "\n").encode()
    return out, TRANSCRIPT_FORMATS[wanted], answer.usage()


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
                answer = decode_answer(data, self._deployment)
                self.usage = answer.usage() or self.usage
                for candidate in answer.candidates[:1]:
                    finished = finished or candidate.finishReason is not None
                    for part in candidate.parts:
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
