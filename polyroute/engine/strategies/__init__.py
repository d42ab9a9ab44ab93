"""Routing strategies: each orders a group's deployments for one request.

A strategy is a function ``order(deployments, ctx) -> list[Deployment]``; add one with a module
here and a line in ``STRATEGIES``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from random import Random

from polyroute.config import Deployment


@dataclass(slots=True)
class RoutingContext:
    rng: Random


Strategy = Callable[[Sequence[Deployment], RoutingContext], list[Deployment]]


def _load() -> dict[str, Strategy]:
    from polyroute.engine.strategies import priority, weighted

    # 'auto' groups are ordered per request by engine/auto.py (it needs the prompt); this
    # entry only serves where no auto-router was built.
    return {"weighted": weighted.order, "priority": priority.order, "auto": priority.order}


STRATEGIES: dict[str, Strategy] = _load()
