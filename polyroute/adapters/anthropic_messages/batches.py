"""Anthropic's Message Batches API, moved as bytes (``/v1/messages/batches…`` of an
``anthropic`` provider), and the usage of a batch's results file read the way the ledger
needs it. Ownership and money live in :mod:`polyroute.engine.message_batches`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from polyroute.adapters.anthropic_messages.errors import error_from_response
from polyroute.adapters.anthropic_messages.translate import canonical_usage
from polyroute.adapters.anthropic_messages.wire import VERSION
from polyroute.adapters.anthropic_messages.wire import Usage as WireUsage
from polyroute.adapters.client import UpstreamClient
from polyroute.model.upstream import Endpoint
from polyroute.model.usage import PromptTokensDetails, Usage

PROTOCOL = "anthropic"
BATCHES_PATH = "/v1/messages/batches"
_CONNECT_S = 10.0
_TOTAL_S = 300.0
_results = msgspec.json.Decoder(dict[str, Any])
_usage = msgspec.json.Decoder(WireUsage)


class MessageBatchClient:
    def __init__(self, client: UpstreamClient) -> None:
        self._client = client

    async def call(self, endpoint: Endpoint, deployment: str, method: str, path: str = "",
                   body: bytes | None = None) -> bytes:
        """``path`` after ``/v1/messages/batches``; the whole body of a 200 answer."""
        return await self._client.fetch(
            method, endpoint.base_url + BATCHES_PATH + path, body=body,
            headers=_headers(endpoint), connect_s=_CONNECT_S, deployment=deployment,
            errors=error_from_response, total_s=_TOTAL_S)


def _headers(endpoint: Endpoint) -> Mapping[str, str]:
    headers = dict(endpoint.request_headers)
    if not any(name.lower() == "anthropic-version" for name in headers):
        headers["anthropic-version"] = VERSION
    return headers


def results_usage(content: bytes) -> tuple[Usage, int]:
    """The summed usage of the succeeded results of a results file (JSONL of ``{"custom_id",
    "result": {"type": "succeeded", "message": {…, "usage"}}}``), and how many succeeded."""
    prompt = completion = cached = written = succeeded = 0
    for line in content.splitlines():
        if not line.strip():
            continue
        try:
            result = _results.decode(line).get("result") or {}
            message = result.get("message") if result.get("type") == "succeeded" else None
            if not isinstance(message, dict) or not isinstance(message.get("usage"), dict):
                continue
            usage = canonical_usage(_usage.decode(msgspec.json.encode(message["usage"])))
        except (msgspec.DecodeError, msgspec.ValidationError, AttributeError):
            continue
        succeeded += 1
        prompt += usage.prompt_tokens
        completion += usage.completion_tokens
        cached += usage.cached_tokens
        written += usage.cache_creation_tokens
    details = None
    if cached or written:
        details = PromptTokensDetails(cached_tokens=cached, cache_creation_tokens=written)
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 total_tokens=prompt + completion, prompt_tokens_details=details), succeeded
