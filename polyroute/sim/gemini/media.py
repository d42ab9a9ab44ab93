"""Gemini's audio through ``generateContent``: a TTS model's speech (``responseModalities:
["AUDIO"]`` and a prebuilt voice → base64 PCM, ``audio/L16;codec=pcm;rate=24000``), and a
model that hears an ``inlineData`` audio part (it answers a transcript, or an English
translation when the text asks to translate). Validated as Gemini does: a voice it does not
have, AUDIO from a model that is not a TTS model, or a TTS model asked for text, are 400s."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from polyroute.sim.gemini.errors import invalid
from polyroute.sim.gemini.reply import Answer, PromptUsage
from polyroute.sim.gemini.request import AUDIO_TOKENS_PER_SECOND, Blob, GenerateContentRequest
from polyroute.sim.gemini.response import candidate, response_body
from polyroute.sim.tokens import count_tokens

VOICES = frozenset({
    "Zephyr", "Puck", "Charon", "Kore", "Fenrir", "Leda", "Orus", "Aoede", "Callirrhoe",
    "Autonoe", "Enceladus", "Iapetus", "Umbriel", "Algieba", "Despina", "Erinome", "Algenib",
    "Rasalgethi", "Laomedeia", "Achernar", "Alnilam", "Schedar", "Gacrux", "Pulcherrima",
    "Achird", "Zubenelgenubi", "Vindemiatrix", "Sadachbia", "Sadaltager", "Sulafat"})
RATE = 24_000
SPEECH_MIME = f"audio/L16;codec=pcm;rate={RATE}"
SECONDS_PER_CHARACTER = 0.05


def speaks(request: GenerateContentRequest, model: str) -> bool:
    """Whether the request asks for audio; a 400 when the model cannot give it (or a TTS
    model is asked for anything else)."""
    modalities = request.config.response_modalities or []
    tts = "tts" in model
    if "AUDIO" in modalities and not tts:
        raise invalid(f"Model {model} does not support the requested response modalities: "
                      "audio")
    if tts and modalities != ["AUDIO"]:
        raise invalid("The requested combination of response modalities (TEXT) is not "
                      "supported by the model. models/" + model + " accepts the following "
                      "combination of response modalities: * AUDIO")
    if tts:
        voice = _voice(request)
        if voice is not None and voice not in VOICES:
            raise invalid(f"Voice {voice} is not supported. Please use one of the prebuilt "
                          "voices.")
    return tts


def _voice(request: GenerateContentRequest) -> str | None:
    speech = request.config.speech_config
    voice = speech.voice_config if speech else None
    prebuilt = voice.prebuilt_voice_config if voice else None
    return prebuilt.voice_name if prebuilt else None


def pcm(text: str, voice: str) -> bytes:
    """Deterministic 16-bit "speech" for ``text``: 50 ms a character, at 24 kHz."""
    samples = max(1, round(len(text) * SECONDS_PER_CHARACTER * RATE))
    return hashlib.shake_256(f"{voice}\0{text}".encode()).digest(samples * 2)


def speech_body(request: GenerateContentRequest, prompt: PromptUsage, model: str,
                response_id: str) -> bytes:
    """The TTS answer: one inlineData part of base64 PCM; its seconds billed as audio output
    tokens."""
    text = " ".join(c.text() for c in request.contents)
    audio = pcm(text, _voice(request) or "Kore")
    seconds = len(audio) / 2 / RATE
    tokens = max(1, round(seconds * AUDIO_TOKENS_PER_SECOND))
    usage = {"promptTokenCount": prompt.tokens, "candidatesTokenCount": tokens,
             "totalTokenCount": prompt.tokens + tokens,
             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt.tokens}],
             "candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": tokens}]}
    part = {"inlineData": {"mimeType": SPEECH_MIME,
                           "data": base64.b64encode(audio).decode()}}
    return response_body([candidate(0, [part], "STOP")], usage, model, response_id)


def heard(request: GenerateContentRequest) -> list[Blob]:
    """The audio parts of the request's last turn."""
    last = request.contents[-1]
    return [p.inline_data for p in last.parts
            if p.inline_data is not None and p.inline_data.mime_type.startswith("audio/")]


def transcript(request: GenerateContentRequest, clips: list[Blob]) -> Answer:
    """What a model answers about the audio it heard: a transcript, or a translation when
    the instruction asks for one."""
    asked = " ".join(c.text() for c in request.contents).lower()
    kind = "translation" if "translate" in asked else "transcript"
    described = ", ".join(f"{c.size} bytes of {c.mime_type}, {c.seconds():g} seconds"
                          for c in clips)
    text = f"Simulated {kind} of {described}."
    return Answer(re.findall(r"\S+\s*", text), None, "STOP", count_tokens(text))


def media_usage_details(request: GenerateContentRequest, prompt: PromptUsage) -> list[Any]:
    """``promptTokensDetails`` split into the audio heard and the rest (text)."""
    audio = sum(b.tokens() for b in heard(request))
    return [{"modality": "TEXT", "tokenCount": prompt.tokens - audio},
            {"modality": "AUDIO", "tokenCount": audio}]
