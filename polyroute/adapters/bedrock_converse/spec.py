"""Amazon Bedrock's Converse protocol: requests signed with SigV4 for a region (or a Bedrock API
key as ``Authorization: Bearer``); a final assistant message is a prefill it continues."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import msgspec

from polyroute.adapters.spec import OptionError, ProtocolSpec
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


SPEC = ProtocolSpec(
    name="bedrock",
    adapter="polyroute.adapters.bedrock_converse.adapter:BedrockConverseAdapter",
    auth="bearer",  # a Bedrock API key; without one, SigV4 from the AWS credential chain
    options=BedrockOptions,
    finish=_finish,
    continuation="assistant_prefill",
)
