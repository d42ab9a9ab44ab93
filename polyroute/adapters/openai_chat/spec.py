"""OpenAI's chat-completions protocol: a key as ``Authorization: Bearer``, no options."""

from polyroute.adapters.spec import ProtocolSpec

MEDIA = frozenset({"images.generations", "images.edits", "audio.transcriptions",
                   "audio.translations", "audio.speech", "moderations", "rerank"})
"""OpenAI's media endpoints, and rerank: not OpenAI's, but served at ``<base_url>/rerank``
with this protocol's key by Jina (``https://api.jina.ai/v1``), Cohere
(``https://api.cohere.com/v2``), vLLM and Infinity."""

SPEC = ProtocolSpec(name="openai",
                    adapter="polyroute.adapters.openai_chat.adapter:OpenAIChatAdapter",
                    endpoints=MEDIA)
