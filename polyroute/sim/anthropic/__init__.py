"""Anthropic's Messages API, simulated: ``POST /v1/messages`` (streaming or not, tools,
thinking, prompt-cache usage), ``/v1/messages/count_tokens`` and the Message Batches API
(:mod:`.batches`), with the simulator's faults shown the way Anthropic shows them (529
``overloaded_error``, an in-stream ``error`` event …)."""

from __future__ import annotations

from aiohttp import web

from polyroute.sim.anthropic.batches import add_message_batch_routes
from polyroute.sim.anthropic.dialect import anthropic_dialect
from polyroute.sim.anthropic.messages import count_tokens, create_message
from polyroute.sim.anthropic.state import ANTHROPIC_STATE, AnthropicState

__all__ = ["add_anthropic_routes", "anthropic_dialect"]


def add_anthropic_routes(app: web.Application, seed: int) -> None:
    app[ANTHROPIC_STATE] = AnthropicState(seed)
    app.router.add_post("/v1/messages", create_message)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    add_message_batch_routes(app)
