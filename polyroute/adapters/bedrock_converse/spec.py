"""Amazon Bedrock's Converse protocol: requests signed with SigV4 for a region (or a Bedrock API
key as ``Authorization: Bearer``); a final assistant message is a prefill it continues."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import msgspec

from polyroute.adapters.spec import OptionError, ProtocolSpec
from polyroute.adapters.support import Support
from polyroute.model.upstream import Endpoint

_HOST = re.compile(r"^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com$")


class BedrockOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    region: str | None = None
    """The AWS region requests are signed for. Unset: taken from base_url's host
    (bedrock-runtime.<region>.amazonaws.com)."""


def _finish(options: BedrockOptions, base_url: str) -> BedrockOptions:
    if options.region:
        return options
    match = _HOST.match(urlsplit(base_url).hostname or "")
    if match is None:
        raise OptionError("region", "the AWS region cannot be read from base_url",
                          "add options: {region: us-east-1} (or ${AWS_REGION}): requests are "
                          "signed for it")
    return BedrockOptions(region=match.group(1))


def options(endpoint: Endpoint) -> BedrockOptions:
    """The endpoint's Bedrock options (the defaults for one built without a config)."""
    found = endpoint.options
    return found if isinstance(found, BedrockOptions) else BedrockOptions()

SUPPORT = Support(
    vendor="Bedrock",
    mapped=frozenset({
        "messages", "model", "models", "stream", "stream_options", "max_tokens",
        "max_completion_tokens", "temperature", "top_p", "top_k", "stop", "tools", "tool_choice",
        "parallel_tool_calls", "response_format", "user", "thinking",
    }),
    why={
        "n": "it returns one answer per request",
        "logprobs": "it returns no token log-probabilities",
        "top_logprobs": "it returns no token log-probabilities",
        "logit_bias": "it has no token biasing",
        "seed": "its sampling cannot be seeded",
        "presence_penalty": "it has no repetition penalties",
        "frequency_penalty": "it has no repetition penalties",
        "reasoning_effort": "each model family takes its own reasoning settings; send 'thinking' "
                            "for Anthropic models",
        "parallel_tool_calls": "it cannot be told to make one call at a time",
        "audio": "it produces no audio",
        "modalities": "it produces text only",
        "prediction": "it has no predicted outputs",
    },
    typed=("n", "seed", "presence_penalty", "frequency_penalty", "reasoning_effort"),
    serial_tool_calls=False,
)
"""What of a chat request Bedrock can carry; anything else a client sent in OpenAI's dialect is a
400 naming it, unless the provider's ``quirks.drop_params`` lists it."""


SPEC = ProtocolSpec(
    name="bedrock",
    adapter="polyroute.adapters.bedrock_converse.adapter:BedrockConverseAdapter",
    auth="bearer",  # a Bedrock API key; without one, SigV4 from the AWS credential chain
    options=BedrockOptions,
    finish=_finish,
    continuation="assistant_prefill",
    support=SUPPORT,
    # Amazon's image models through InvokeModel, and the Rerank API of bedrock-agent-runtime
    # (adapters/bedrock_converse/media.py)
    endpoints=frozenset({"images.generations", "rerank"}),
)
