"""Vendor caps enforced by routing (issue 14, item 4): no vendor above ``max_share`` of a
group's requests over a sliding window. Steering happens on the ordered candidates, after
the group's strategy: when the first choice's vendor is at its cap, the cheapest deployment
of a vendor under it goes first; the rest keep their order (failover is unchanged). Counted
per process, on first choices (what routing controls): across replicas each holds the cap of
its own share of the traffic, not of the total — see docs/notes.md."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

from polyroute.config import Deployment, ModelGroup


class ShareCaps:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._recent: dict[str, deque[tuple[float, str]]] = {}
        self._counts: dict[str, dict[str, int]] = {}
        self.unmet = 0
        """Requests routed above a cap because no vendor under it was left to take them."""

    def steer(self, group: ModelGroup, ordered: Sequence[Deployment]) -> list[Deployment]:
        caps = group.caps
        out = list(ordered)
        if caps is None or caps.max_share is None or not out:
            return out
        limit = caps.max_share
        now = self._clock()
        recent = self._recent.setdefault(group.name, deque())
        counts = self._counts.setdefault(group.name, {})
        while recent and recent[0][0] <= now - caps.window_s:
            _, gone = recent.popleft()
            counts[gone] -= 1
        total = len(recent)

        def over(vendor: str) -> bool:
            # Above the cap already: one more request would only add to it. So a vendor's
            # share exceeds the cap by at most one request of the window.
            return total > 0 and counts.get(vendor, 0) / total > limit

        if over(out[0].vendor):
            under = [d for d in out if d.equivalent and not over(d.vendor)]
            if under:
                cheapest = min(under, key=_price)
                out.remove(cheapest)
                out.insert(0, cheapest)
            else:
                self.unmet += 1
        chosen = out[0].vendor
        recent.append((now, chosen))
        counts[chosen] = counts.get(chosen, 0) + 1
        return out


def _price(d: Deployment) -> float:
    """The least extra cost: dearer deployments are steered to last (unpriced ones last)."""
    if d.price is None:
        return float("inf")
    return d.price.input_per_1m + d.price.output_per_1m
