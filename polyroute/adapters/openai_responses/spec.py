"""OpenAI's Responses API: a key as ``Authorization: Bearer``, no options. OpenAI and Azure's
``/openai/v1`` both serve it at ``<base_url>/responses``."""

from polyroute.adapters.openai_chat.spec import MEDIA
from polyroute.adapters.spec import ProtocolSpec

SPEC = ProtocolSpec(
    name="openai_responses",
    adapter="polyroute.adapters.openai_responses.adapter:OpenAIResponsesAdapter",
    endpoints=MEDIA)  # the same servers: the media endpoints are inherited from OpenAI's
