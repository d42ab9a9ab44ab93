"""Protocol name → adapter class, imported lazily so unused protocols cost nothing."""

from __future__ import annotations

import importlib
from typing import Any

from polyroute.adapters.base import Adapter
from polyroute.adapters.transport import Transport

PROTOCOLS: dict[str, str] = {
    "openai": "polyroute.adapters.openai_chat.adapter:OpenAIChatAdapter",
    "anthropic": "polyroute.adapters.anthropic_messages.adapter:AnthropicMessagesAdapter",
    "gemini": "polyroute.adapters.gemini.adapter:GeminiAdapter",
    "bedrock": "polyroute.adapters.bedrock_converse.adapter:BedrockConverseAdapter",
    "azure": "polyroute.adapters.azure_openai.adapter:AzureOpenAIAdapter",
}


class AdapterRegistry:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._adapters: dict[str, Adapter] = {}

    def get(self, protocol: str) -> Adapter:
        adapter = self._adapters.get(protocol)
        if adapter is None:
            module_name, _, class_name = PROTOCOLS[protocol].partition(":")
            cls: Any = getattr(importlib.import_module(module_name), class_name)
            adapter = self._adapters[protocol] = cls(self._transport)
        return adapter
