"""Quota headroom: traffic shared by what is left of each deployment's quota, so it moves
before the vendor answers 429. Headroom is the least of the shares left that the vendor's own
``x-ratelimit-remaining-*`` headers reported (until their reset) and of the deployment's
configured ``rpm``/``tpm`` against what was sent in the last minute. The first pick is random
in proportion to ``weight`` × headroom; a deployment at or below
``routing_options.quota_reserve`` is shed: it goes after every other one (and before none),
whatever its priority."""

from __future__ import annotations

from collections.abc import Sequence

from polyroute.config import Deployment
from polyroute.engine.strategies import Ranked, RoutingContext

_FLOOR = 1e-9


def order(deployments: Sequence[Deployment], ctx: RoutingContext) -> list[Deployment]:
    room, rand, reserve = ctx.room, ctx.rng.random, ctx.knobs.quota_reserve
    left = {d.name: room.headroom(d.name, d.rpm, d.tpm) for d in deployments}
    ranked = sorted(deployments, key=lambda d: (
        left[d.name] <= reserve, d.priority,
        -(rand() ** (1.0 / max(_FLOOR, d.weight * left[d.name])))))
    kind = "shed" if left[ranked[0].name] <= reserve else "headroom"
    shown = " ".join(f"{d.name}={left[d.name]:.2f}" for d in ranked)
    return Ranked(ranked, kind, f"quota {kind} {ranked[0].name}; headroom {shown}")
