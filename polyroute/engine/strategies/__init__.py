"""Routing strategies: each orders a group's deployments for one request.

A strategy is a function ``order(deployments, ctx) -> list[Deployment]``; add one with a module
here and a line in ``STRATEGIES``. Those that read the room (latency, load, quota, price)
return a :class:`Ranked` list, which also says why: the reason goes into the
``x-polyroute-route`` header, the ledger row and ``polyroute_route_decisions``. Every one of
them keeps the group's priorities (a lower ``priority`` first) and every deployment, so the
attempt loop still fails over down the whole list and into fallback groups.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from random import Random

from polyroute.config import Deployment
from polyroute.config.compiled import RoutingKnobs
from polyroute.engine.room import Room


@dataclass(slots=True)
class RoutingContext:
    rng: Random
    room: Room = field(default_factory=Room)
    knobs: RoutingKnobs = field(default_factory=RoutingKnobs)
    stream: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    """The request's size as far as it is known (for cost and context-window fit)."""


class Ranked(list[Deployment]):
    """An order with its reason: ``kind`` (a metric label: fastest, explore, unmeasured,
    least_busy, headroom, shed, cheapest…) and ``reason`` (the header's text)."""

    __slots__ = ("kind", "reason")

    def __init__(self, order: Sequence[Deployment], kind: str, reason: str) -> None:
        super().__init__(order)
        self.kind = kind
        self.reason = reason


Strategy = Callable[[Sequence[Deployment], RoutingContext], list[Deployment]]


def _load() -> dict[str, Strategy]:
    from polyroute.engine.strategies import (
        cost,
        least_busy,
        least_latency,
        priority,
        quota,
        weighted,
    )

    # 'auto' groups are ordered per request by engine/auto.py (it needs the prompt); this
    # entry only serves where no auto-router was built.
    return {"weighted": weighted.order, "priority": priority.order, "auto": priority.order,
            "least_latency": least_latency.order, "least_busy": least_busy.order,
            "quota": quota.order, "cost": cost.order}


STRATEGIES: dict[str, Strategy] = _load()
