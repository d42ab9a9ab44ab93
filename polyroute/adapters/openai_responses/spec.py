"""OpenAI's Responses API: a key as ``Authorization: Bearer``, no options. OpenAI and Azure's
``/openai/v1`` both serve it at ``<base_url>/responses``."""

from polyroute.adapters.spec import ProtocolSpec

SPEC = ProtocolSpec(
    name="openai_responses",
    adapter="polyroute.adapters.openai_responses.adapter:OpenAIResponsesAdapter")
