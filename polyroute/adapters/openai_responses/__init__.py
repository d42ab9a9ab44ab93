"""OpenAI's Responses API (``POST /responses``) as an upstream protocol: canonical chat ⇄
Responses requests, objects and stream events; a Responses client's own body forwarded."""
