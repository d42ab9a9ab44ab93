"""Converse response bodies and the usage they carry."""

from __future__ import annotations

from typing import Any

import msgspec

from polyroute.sim.bedrock.reply import Answer, PromptUsage

ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()
GUARDRAIL_TEXT = "Sorry, the model cannot answer this question."


def usage(prompt: PromptUsage, output_tokens: int) -> dict[str, Any]:
    out: dict[str, Any] = {"inputTokens": prompt.input_tokens, "outputTokens": output_tokens}
    cached = (prompt.cache_read or 0) + (prompt.cache_write or 0)
    out["totalTokens"] = prompt.input_tokens + output_tokens + cached
    if prompt.cache_read is not None:
        out["cacheReadInputTokens"] = prompt.cache_read
        out["cacheWriteInputTokens"] = prompt.cache_write or 0
    return out


def content(answer: Answer) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if answer.reasoning_pieces:
        blocks.append({"reasoningContent": {"reasoningText": {
            "text": "".join(answer.reasoning_pieces), "signature": answer.signature}}})
    if answer.text_pieces or answer.tool_use is None:
        blocks.append({"text": "".join(answer.text_pieces)})
    if answer.tool_use is not None:
        call = answer.tool_use
        blocks.append({"toolUse": {"toolUseId": call.id, "name": call.name,
                                   "input": _DECODER.decode(call.arguments)}})
    return blocks


def converse_body(answer: Answer, prompt: PromptUsage, latency_ms: int) -> bytes:
    return ENCODER.encode({
        "output": {"message": {"role": "assistant", "content": content(answer)}},
        "stopReason": answer.stop_reason,
        "usage": usage(prompt, answer.output_tokens),
        "metrics": {"latencyMs": latency_ms},
    })


def guardrail_answer() -> Answer:
    """What a guardrail that intervened leaves of the answer: its own canned text."""
    return Answer([GUARDRAIL_TEXT], None, "guardrail_intervened", 0)
