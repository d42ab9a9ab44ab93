"""Azure OpenAI: OpenAI's protocol at Azure's URLs; the key in ``api-key`` (or a Microsoft Entra
token with ``auth: bearer``); the api-version of deployment URLs is its one option."""

from __future__ import annotations

import msgspec

from polyroute.adapters.spec import ProtocolSpec
from polyroute.model.upstream import Endpoint

DEFAULT_API_VERSION = "2024-10-21"
"""The api-version of Azure deployment URLs when the provider names none: the newest GA
version of the data-plane API when this was written."""
V1_SUFFIX = "/openai/v1"


class AzureOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    api_version: str | None = None
    """The api-version query parameter. Unset: 2024-10-21 for deployment URLs, none for the
    /openai/v1 form (which takes none); empty: never sent."""


def _finish(options: AzureOptions, base_url: str) -> AzureOptions:
    if options.api_version is not None:
        return AzureOptions(api_version=options.api_version or None)
    if base_url.endswith(V1_SUFFIX):
        return options
    return AzureOptions(api_version=DEFAULT_API_VERSION)


def options(endpoint: Endpoint) -> AzureOptions:
    """The endpoint's Azure options (none for one built without a config)."""
    found = endpoint.options
    return found if isinstance(found, AzureOptions) else AzureOptions()


SPEC = ProtocolSpec(
    name="azure",
    adapter="polyroute.adapters.azure_openai.adapter:AzureOpenAIAdapter",
    auth="api-key",
    options=AzureOptions,
    finish=_finish,
    # Azure OpenAI has no moderation endpoint (content filtering is built in) and no rerank.
    endpoints=frozenset({"images.generations", "images.edits", "audio.transcriptions",
                         "audio.translations", "audio.speech"}),
)
