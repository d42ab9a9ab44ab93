"""A batch's input file (OpenAI's JSONL: one ``{"custom_id", "method", "url", "body"}`` a
line) and its output file, read the way budgets need them: pure functions.

- :func:`read_input` checks every line and counts the worst case a batch of it may cost: the
  prompt estimated from each body's bytes (a token for four, JSON syntax included, so it
  leans high) and each line's output limit (``max_completion_tokens`` / ``max_tokens``, or the
  policy's default) times its ``n``.
- :func:`rewrite` names the deployment's model in every line (the client named a model group)
  and, for a key with a budget, gives a line without an output limit the one its reservation
  counted, so the batch can never cost more than was reserved.
- :func:`output_usage` sums the usage the vendor reported in the output file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from polyroute.errors import InvalidRequest
from polyroute.model.usage import CompletionTokensDetails, PromptTokensDetails, Usage

CHAT_URLS = frozenset({"/v1/chat/completions", "/chat/completions"})
EMBEDDING_URLS = frozenset({"/v1/embeddings", "/embeddings"})
_decode_line = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class BatchInput:
    model: str
    """The model every line names (OpenAI requires one per file): a group or vendor/model."""
    url: str
    lines: int
    input_tokens: int
    output_tokens: int
    """The most output the whole file may produce."""


def read_input(content: bytes, default_output: int) -> tuple[BatchInput, list[dict[str, Any]]]:
    """The file's summary and its lines, or InvalidRequest naming the first bad line."""
    items: list[dict[str, Any]] = []
    model = url = None
    input_tokens = output_tokens = 0
    seen: set[str] = set()
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {number} of the batch file"
        try:
            item = _decode_line(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise InvalidRequest(f"{where} is not a JSON object.", param="file") from None
        body = item.get("body")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not isinstance(body, dict):
            raise InvalidRequest(f"{where} needs a 'custom_id' string and a 'body' object.",
                                 param="file")
        if custom_id in seen:
            raise InvalidRequest(f"{where} repeats the custom_id '{custom_id}'.", param="file")
        seen.add(custom_id)
        if item.get("method") != "POST" or item.get("url") not in CHAT_URLS | EMBEDDING_URLS:
            raise InvalidRequest(f"{where}: method must be POST and url /v1/chat/completions "
                                 "or /v1/embeddings.", param="file")
        if model is None:
            model, url = body.get("model"), item["url"]
            if not isinstance(model, str) or not model:
                raise InvalidRequest(f"{where} names no model.", param="file")
        elif body.get("model") != model or item["url"] != url:
            raise InvalidRequest(f"{where}: every line of a batch file must name the same "
                                 f"model and url ('{model}', '{url}').", param="file")
        input_tokens += len(_encode(body)) // 4 + 1
        if item["url"] in CHAT_URLS:
            output_tokens += _line_output(body, default_output, where)
        items.append(item)
    if model is None or url is None:
        raise InvalidRequest("The batch file has no lines.", param="file")
    return BatchInput(model, url, len(items), input_tokens, output_tokens), items


def _line_output(body: dict[str, Any], default_output: int, where: str) -> int:
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    n = body.get("n", 1)
    if limit is None:
        limit = default_output
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1 \
            or not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128:
        raise InvalidRequest(f"{where}: max_completion_tokens / max_tokens and n must be "
                             "positive integers.", param="file")
    return limit * n


def rewrite(items: list[dict[str, Any]], upstream_model: str, cap: int | None,
            cap_field: str, azure: bool) -> bytes:
    """The file the upstream gets: its model in every body, ``cap`` (the reserved output per
    answer) on lines that set no limit, and Azure's URLs without ``/v1``."""
    out: list[bytes] = []
    for item in items:
        body = dict(item["body"])
        body["model"] = upstream_model
        if cap is not None and item["url"] in CHAT_URLS and "max_tokens" not in body \
                and "max_completion_tokens" not in body:
            body[cap_field] = cap
        line = {**item, "body": body}
        if azure:
            line["url"] = item["url"].removeprefix("/v1")
        out.append(_encode(line))
    return b"\n".join(out) + b"\n"


def output_usage(content: bytes) -> tuple[Usage, int]:
    """The summed usage of the answered lines of an output file, and how many lines had one."""
    prompt = completion = cached = reasoning = answered = 0
    for line in content.splitlines():
        if not line.strip():
            continue
        try:
            item = _decode_line(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        response = item.get("response")
        body = response.get("body") if isinstance(response, dict) else None
        usage = body.get("usage") if isinstance(body, dict) else None
        if not isinstance(usage, dict):
            continue
        answered += 1
        prompt += _int(usage.get("prompt_tokens", usage.get("input_tokens")))
        completion += _int(usage.get("completion_tokens", usage.get("output_tokens")))
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict):
            cached += _int(details.get("cached_tokens"))
        details = usage.get("completion_tokens_details")
        if isinstance(details, dict):
            reasoning += _int(details.get("reasoning_tokens"))
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 total_tokens=prompt + completion,
                 prompt_tokens_details=PromptTokensDetails(cached_tokens=cached)
                 if cached else None,
                 completion_tokens_details=CompletionTokensDetails(reasoning_tokens=reasoning)
                 if reasoning else None), answered


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
