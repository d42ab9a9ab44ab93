"""Weighted random order: the first pick is proportional to weight, and so is each next pick
among those left (Efraimidis–Spirakis keys), so failover spreads by weight too."""

from __future__ import annotations

from collections.abc import Sequence

from polyroute.config import Deployment
from polyroute.engine.strategies import RoutingContext


def order(deployments: Sequence[Deployment], ctx: RoutingContext) -> list[Deployment]:
    if len(deployments) == 1:
        return list(deployments)
    rand = ctx.rng.random
    return sorted(deployments, key=lambda d: rand() ** (1.0 / d.weight), reverse=True)
