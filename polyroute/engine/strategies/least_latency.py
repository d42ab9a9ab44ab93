"""Least latency: the deployment answering fastest first, by an exponentially weighted estimate
(``routing_options.alpha``) of its time to first content for streams and of its whole answer
otherwise (they are learnt apart). A deployment never measured goes first, so each is
measured; and with probability ``routing_options.explore`` a random one goes first, so a
deployment that was slow and has recovered is noticed."""

from __future__ import annotations

from collections.abc import Sequence

from polyroute.config import Deployment
from polyroute.engine.strategies import Ranked, RoutingContext


def order(deployments: Sequence[Deployment], ctx: RoutingContext) -> list[Deployment]:
    room, stream, rand = ctx.room, ctx.stream, ctx.rng.random
    estimates = {d.name: room.latency(d.name, stream) for d in deployments}
    ranked = sorted(deployments, key=lambda d: (
        d.priority, -1.0 if estimates[d.name] is None else estimates[d.name], rand()))
    kind = "unmeasured" if estimates[ranked[0].name] is None else "fastest"
    if len(ranked) > 1 and rand() < ctx.knobs.explore:
        # Explore within the first priority tier only: priorities are the operator's order.
        tier = [d for d in ranked if d.priority == ranked[0].priority]
        pick = tier[int(rand() * len(tier))]
        if pick is not ranked[0]:
            ranked.remove(pick)
            ranked.insert(0, pick)
            kind = "explore"
    shown = " ".join(f"{d.name}={_ms(estimates[d.name])}" for d in ranked)
    return Ranked(ranked, kind, f"least_latency {kind} {ranked[0].name}; {shown}")


def _ms(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds * 1000:.0f}ms"
