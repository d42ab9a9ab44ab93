"""Azure OpenAI: OpenAI's protocol at Azure's URLs (:mod:`.urls`). The key goes in ``api-key``
(``auth: api-key``) or, for a Microsoft Entra token, ``Authorization: Bearer``
(``auth: bearer``)."""

from __future__ import annotations

from polyroute.adapters.azure_openai import urls
from polyroute.adapters.openai_chat.adapter import OpenAIChatAdapter
from polyroute.model.upstream import Endpoint


class AzureOpenAIAdapter(OpenAIChatAdapter):
    def url(self, endpoint: Endpoint, model: str, path: str) -> str:
        return urls.url(endpoint, model, path)

    async def list_models(self, endpoint: Endpoint) -> list[str]:
        # Azure's data plane lists base models, not the deployments requests are routed by;
        # 'azure/<deployment>' works for any deployment name without a listing.
        return []
