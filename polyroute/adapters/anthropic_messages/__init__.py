"""Anthropic's Messages API (``POST /v1/messages``): Anthropic itself and servers that speak
its protocol, told apart only by config."""
