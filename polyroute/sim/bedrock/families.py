"""What a simulated batch inference job's model answers one record with: each family's
InvokeModel body checked the way Bedrock checks it (unknown keys and bad values are the
record's error) and answered in that family's shape.

    Anthropic   the Messages simulator's answer
    Nova        messages-v1 → {output: {message}, stopReason, usage{inputTokens, outputTokens,
                totalTokens[, cacheRead/WriteInputTokenCount]}}
    Llama 3     {prompt, max_gen_len, temperature, top_p} → {generation, prompt_token_count,
                generation_token_count, stop_reason: stop | length}"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from polyroute.sim import request_schema as openai_schema
from polyroute.sim.anthropic.batches import batch_result
from polyroute.sim.anthropic.state import get_anthropic_state
from polyroute.sim.bedrock.errors import BedrockError
from polyroute.sim.bedrock.reply import build_answer, prompt_usage
from polyroute.sim.bedrock.request import decode_converse
from polyroute.sim.bedrock.response import content, usage
from polyroute.sim.bedrock.state import get_bedrock_state
from polyroute.sim.errors import ApiError
from polyroute.sim.replies import build_reply
from polyroute.sim.state import get_state
from polyroute.sim.tokens import count_tokens

Outcome = tuple[dict[str, Any] | None, str | None]
"""A record's ``modelOutput``, or the message of its ``error``."""
_GEOGRAPHIES = frozenset({"us", "eu", "apac", "global", "us-gov", "jp", "au", "ca"})
_NOVA_KEYS = frozenset({"schemaVersion", "system", "messages", "inferenceConfig", "toolConfig"})
_LLAMA_KEYS = frozenset({"prompt", "temperature", "top_p", "max_gen_len", "images"})
_LLAMA_TURN = re.compile(r"<\|start_header_id\|>(system|user|assistant)<\|end_header_id\|>\n\n"
                         r"(.*?)(<\|eot_id\|>|$)", re.S)
_LLAMA_MAX_GEN = 2048
_encode = msgspec.json.Encoder().encode


def _anthropic(request: web.Request, model: str, body: dict[str, Any]) -> Outcome:
    params = dict(body)
    if params.pop("anthropic_version", None) != "bedrock-2023-05-31":
        return None, "anthropic_version: bedrock-2023-05-31 is required"
    params["model"] = model
    result = batch_result(get_state(request), get_anthropic_state(request), {"params": params})
    if result["type"] == "succeeded":
        return result["message"], None
    return None, str(result["error"]["error"]["message"])


def _nova(request: web.Request, model: str, body: dict[str, Any]) -> Outcome:
    extra = sorted(set(body) - _NOVA_KEYS)
    if extra:
        return None, f"Malformed input request: extraneous key [{extra[0]}] is not permitted"
    if body.get("schemaVersion") != "messages-v1":
        return None, "Malformed input request: schemaVersion must be messages-v1"
    converse = {k: v for k, v in body.items() if k != "schemaVersion"}
    config = dict(converse.get("inferenceConfig") or {})
    top_k = config.pop("topK", None)
    if top_k is not None and not (isinstance(top_k, int) and 0 <= top_k <= 128):
        return None, "Malformed input request: inferenceConfig.topK must be 0 to 128"
    if "inferenceConfig" in converse:
        converse["inferenceConfig"] = config
    state, bedrock = get_state(request), get_bedrock_state(request)
    try:
        parsed = decode_converse(_encode(converse))
        answer = build_answer(parsed, model, bedrock, default_text=state.settings.text,
                              chunk_tokens=state.settings.chunk_tokens)
    except BedrockError as exc:
        return None, exc.message
    counted = usage(prompt_usage(parsed, model, bedrock), answer.output_tokens)
    for converse_name, nova_name in (("cacheReadInputTokens", "cacheReadInputTokenCount"),
                                     ("cacheWriteInputTokens", "cacheWriteInputTokenCount")):
        if converse_name in counted:
            counted[nova_name] = counted.pop(converse_name)
    return {"output": {"message": {"role": "assistant", "content": content(answer)}},
            "stopReason": answer.stop_reason, "usage": counted}, None


def _llama(request: web.Request, model: str, body: dict[str, Any]) -> Outcome:
    extra = sorted(set(body) - _LLAMA_KEYS)
    if extra:
        return None, f"Malformed input request: extraneous key [{extra[0]}] is not permitted"
    prompt, limit = body.get("prompt"), body.get("max_gen_len", 512)
    if not isinstance(prompt, str) or not prompt:
        return None, "Malformed input request: prompt is required"
    if not isinstance(limit, int) or not 1 <= limit <= _LLAMA_MAX_GEN:
        return None, f"Malformed input request: max_gen_len must be 1 to {_LLAMA_MAX_GEN}"
    # The chat template's turns, read back; a prompt without it is one user turn.
    turns = [openai_schema.ChatMessage(role, text) for role, text, _ in
             _LLAMA_TURN.findall(prompt)] or [openai_schema.ChatMessage("user", prompt)]
    if turns[-1].role == "assistant" and turns[-1].content == "":
        turns.pop()  # the header the answer follows
    state = get_state(request)
    try:
        reply = build_reply(openai_schema.ChatRequest(model=model, messages=turns,
                                                      max_tokens=limit),
                            model, default_text=state.settings.text,
                            chunk_tokens=state.settings.chunk_tokens,
                            new_call_id=get_bedrock_state(request).tool_use_id,
                            continues_prefill=True)
    except ApiError as exc:
        return None, exc.message
    return {"generation": reply.text, "prompt_token_count": count_tokens(prompt),
            "generation_token_count": reply.completion_tokens,
            "stop_reason": "length" if reply.finish_reason == "length" else "stop"}, None


FAMILIES: tuple[tuple[str, Callable[[web.Request, str, dict[str, Any]], Outcome]], ...] = (
    ("anthropic.", _anthropic),
    ("amazon.nova-micro", _nova),  # the text models; canvas, reel and sonic run no batches
    ("amazon.nova-lite", _nova),
    ("amazon.nova-pro", _nova),
    ("amazon.nova-premier", _nova),
    ("amazon.nova-2-lite", _nova),
    ("meta.llama3", _llama),
)


def family(model_id: str) -> Callable[[web.Request, str, dict[str, Any]], Outcome] | None:
    """The family that runs ``model_id`` in a batch (None: the model runs no batches)."""
    name = model_id.rpartition("/")[2]
    geography, dot, rest = name.partition(".")
    if dot and geography in _GEOGRAPHIES:
        name = rest
    return next((run for prefix, run in FAMILIES if name.startswith(prefix)), None)
