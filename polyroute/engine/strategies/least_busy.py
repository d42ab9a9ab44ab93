"""Least busy: the deployment with the fewest requests in flight (per unit of ``weight``)
first; ties broken at random. In flight counts this replica's requests and, with
``state.redis_url``, the other replicas' as last synced (every ``state.sync_interval_s``)."""

from __future__ import annotations

from collections.abc import Sequence

from polyroute.config import Deployment
from polyroute.engine.strategies import Ranked, RoutingContext


def order(deployments: Sequence[Deployment], ctx: RoutingContext) -> list[Deployment]:
    room, rand = ctx.room, ctx.rng.random
    busy = {d.name: room.busy(d.name) for d in deployments}
    ranked = sorted(deployments, key=lambda d: (d.priority, busy[d.name] / d.weight, rand()))
    shown = " ".join(f"{d.name}={busy[d.name]}" for d in ranked)
    return Ranked(ranked, "least_busy", f"least_busy {ranked[0].name}; in flight {shown}")
