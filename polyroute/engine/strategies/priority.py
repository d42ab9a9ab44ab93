"""Priority order: the lowest priority number first; equal priorities share by weight."""

from __future__ import annotations

from collections.abc import Sequence

from polyroute.config import Deployment
from polyroute.engine.strategies import RoutingContext


def order(deployments: Sequence[Deployment], ctx: RoutingContext) -> list[Deployment]:
    rand = ctx.rng.random
    return sorted(deployments, key=lambda d: (d.priority, -(rand() ** (1.0 / d.weight))))
