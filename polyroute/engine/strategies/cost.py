"""Cost: the cheapest deployment that fits first. A request's price at each deployment is its
estimated prompt and its output limit (at most ``routing_options.expected_output_tokens``)
at that deployment's price (configured, else the catalog's). A deployment whose
``context_window`` is known to be too small for the prompt goes after those that fit; one
with no known price goes after the priced ones. Priorities still come first."""

from __future__ import annotations

from collections.abc import Sequence

from polyroute.config import Deployment
from polyroute.engine.strategies import Ranked, RoutingContext

_UNKNOWN = float("inf")


def order(deployments: Sequence[Deployment], ctx: RoutingContext) -> list[Deployment]:
    prompt = ctx.input_tokens
    output = min(ctx.output_tokens or ctx.knobs.expected_output_tokens,
                 ctx.knobs.expected_output_tokens)
    rand = ctx.rng.random

    def usd(d: Deployment) -> float:
        if d.price is None:
            return _UNKNOWN
        return (prompt * d.price.input_per_1m + output * d.price.output_per_1m) / 1e6

    costs = {d.name: usd(d) for d in deployments}
    ranked = sorted(deployments, key=lambda d: (
        d.context_window is not None and d.context_window < prompt, d.priority,
        costs[d.name], rand()))
    shown = " ".join(f"{d.name}=" + ("?" if costs[d.name] == _UNKNOWN
                                      else f"${costs[d.name]:.6f}") for d in ranked)
    return Ranked(ranked, "cheapest", f"cost cheapest {ranked[0].name}; {shown}")
