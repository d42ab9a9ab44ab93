"""Where an Azure OpenAI request goes: deployment URLs with api-version, and the v1 form."""

from __future__ import annotations

from polyroute.adapters.azure_openai import urls
from polyroute.adapters.azure_openai.spec import AzureOptions
from polyroute.config.compiled import Endpoint


def test_azure_urls() -> None:
    deployment = Endpoint("azure", "azure", "https://r.openai.azure.com", {},
                          options=AzureOptions(api_version="2024-10-21"))
    assert urls.url(deployment, "gpt 4o", "/chat/completions") == (
        "https://r.openai.azure.com/openai/deployments/gpt%204o/chat/completions"
        "?api-version=2024-10-21")
    v1 = Endpoint("azure", "azure", "https://r.openai.azure.com/openai/v1", {})
    assert urls.url(v1, "gpt-4o", "/embeddings") == \
        "https://r.openai.azure.com/openai/v1/embeddings"
