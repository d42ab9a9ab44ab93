"""Anthropic's dialect: ``POST /v1/messages`` and ``/v1/messages/count_tokens``, so clients
built on Anthropic's SDKs can reach any routed model."""
