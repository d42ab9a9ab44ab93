"""Azure OpenAI: OpenAI's wire format behind Azure's URLs. Bodies, chunks and errors are
OpenAI's (:mod:`polyroute.adapters.openai_chat.translate` does all the meaning); only where a
request goes differs."""
