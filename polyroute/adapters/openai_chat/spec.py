"""OpenAI's chat-completions protocol: a key as ``Authorization: Bearer``, no options."""

from polyroute.adapters.spec import ProtocolSpec

SPEC = ProtocolSpec(name="openai",
                    adapter="polyroute.adapters.openai_chat.adapter:OpenAIChatAdapter")
