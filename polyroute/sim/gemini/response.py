"""Gemini response bodies: ``GenerateContentResponse`` (whole, or one stream event), a blocked
prompt, and ``BatchEmbedContentsResponse``."""

from __future__ import annotations

from typing import Any

import msgspec

from polyroute.sim.gemini.reply import Answer, PromptUsage

ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()
BLOCKED_RATINGS = [
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
]


def usage_metadata(prompt: PromptUsage, answer: Answer | None) -> dict[str, Any]:
    """The whole answer's usage; without an answer, only the prompt's (a stream's early
    events, a blocked prompt)."""
    usage: dict[str, Any] = {"promptTokenCount": prompt.tokens}
    total = prompt.tokens
    if answer is not None:
        usage["candidatesTokenCount"] = answer.output_tokens
        total += answer.output_tokens + answer.thought_tokens
    usage["totalTokenCount"] = total
    if prompt.cached:
        usage["cachedContentTokenCount"] = prompt.cached
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt.tokens}]
    if prompt.cached:
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt.cached}]
    if answer is not None and answer.thought_tokens:
        usage["thoughtsTokenCount"] = answer.thought_tokens
    return usage


def answer_parts(answer: Answer) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if answer.thought_pieces:
        parts.append({"text": "".join(answer.thought_pieces), "thought": True})
    if answer.call is not None:
        parts.append(call_part(answer))
    else:
        parts.append({"text": "".join(answer.text_pieces)})
    return parts


def call_part(answer: Answer) -> dict[str, Any]:
    call = answer.call
    assert call is not None
    return {"functionCall": {"name": call.name, "args": _DECODER.decode(call.arguments)},
            "thoughtSignature": call.signature}


def candidate(index: int, parts: list[dict[str, Any]] | None,
              finish_reason: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if parts is not None:
        out["content"] = {"parts": parts, "role": "model"}
    if finish_reason is not None:
        out["finishReason"] = finish_reason
    out["index"] = index
    return out


def response_body(
    candidates: list[dict[str, Any]], usage: dict[str, Any], model: str, response_id: str
) -> bytes:
    return ENCODER.encode({"candidates": candidates, "usageMetadata": usage,
                           "modelVersion": model, "responseId": response_id})


def blocked_body(prompt: PromptUsage, model: str, response_id: str) -> bytes:
    """A prompt refused outright: 200, no candidates, ``promptFeedback.blockReason``."""
    return ENCODER.encode({
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": BLOCKED_RATINGS},
        "usageMetadata": usage_metadata(prompt, None),
        "modelVersion": model, "responseId": response_id})


def embeddings_body(vectors: list[list[float]]) -> bytes:
    return ENCODER.encode({"embeddings": [{"values": v} for v in vectors]})
