"""OpenAI's Responses API (``POST /v1/responses``), stateless: text, function tools, usage."""
