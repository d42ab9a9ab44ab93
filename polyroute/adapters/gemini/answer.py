"""A Gemini ``GenerateContentResponse`` read for what the media translations need: its parts'
inline data and text, finish reasons, usage, and why it holds nothing asked for. Decoded once
with a typed decoder; every other field is skipped."""

from __future__ import annotations

import msgspec

from polyroute.errors import ContentFiltered, UpstreamError, UpstreamProtocolError
from polyroute.model.usage import Usage

_BLOCKED = frozenset({"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY",
                      "RECITATION"})


class Blob(msgspec.Struct):
    data: str = ""
    mimeType: str = ""


class Part(msgspec.Struct):
    inlineData: Blob | None = None
    text: str | None = None
    thought: bool | None = None


class Content(msgspec.Struct):
    parts: list[Part] = msgspec.field(default_factory=list)


class Candidate(msgspec.Struct):
    content: Content | None = None
    finishReason: str | None = None

    @property
    def parts(self) -> list[Part]:
        return self.content.parts if self.content is not None else []


class UsageMetadata(msgspec.Struct):
    promptTokenCount: int = 0
    candidatesTokenCount: int = 0
    thoughtsTokenCount: int = 0


class Feedback(msgspec.Struct):
    blockReason: str | None = None


class Answer(msgspec.Struct):
    candidates: list[Candidate] = msgspec.field(default_factory=list)
    usageMetadata: UsageMetadata | None = None
    promptFeedback: Feedback | None = None

    def usage(self) -> Usage | None:
        """Gemini's counts as the canonical usage: thoughts are output too."""
        meta = self.usageMetadata
        if meta is None:
            return None
        output = meta.candidatesTokenCount + meta.thoughtsTokenCount
        return Usage(prompt_tokens=meta.promptTokenCount, completion_tokens=output,
                     total_tokens=meta.promptTokenCount + output)


_decoder = msgspec.json.Decoder(Answer)


def decode_answer(body: bytes, deployment: str) -> Answer:
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise UpstreamProtocolError(f"unreadable Gemini answer: {exc}",
                                    deployment=deployment) from exc


def nothing(answer: Answer, what: str, deployment: str) -> UpstreamError:
    """An answer without the audio or text asked for: blocked (a content filter), or the
    model said something else."""
    blocked = answer.promptFeedback.blockReason if answer.promptFeedback else None
    finish = next((c.finishReason for c in answer.candidates if c.finishReason), None)
    if blocked or finish in _BLOCKED:
        return ContentFiltered(f"Gemini returned no {what}: blocked ({blocked or finish})",
                               deployment=deployment)
    return UpstreamProtocolError(f"Gemini returned no {what} (finish reason "
                                 f"{finish or 'none'})", deployment=deployment)
