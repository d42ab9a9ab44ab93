"""The decision values the engine passes in and gets back: candidates, policy, decision."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DEFAULT_WILLINGNESS_TO_PAY = 0.02  # USD per unit of expected quality; see docs/router.md


@dataclass(frozen=True, slots=True)
class Candidate:
    """A configured model the router may pick. ``profile`` names the trained model (or tier)
    it is assumed to behave like; ``None`` means the name itself is one."""

    name: str
    price_in_per_1m: float
    price_out_per_1m: float
    profile: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """The trade-off knob. ``willingness_to_pay``: USD one unit of expected quality (one more
    good answer) is worth — the router maximises ``quality − cost / willingness_to_pay``.
    ``quality_floor``: the cheapest candidate predicted at least this good. ``cost_ceiling``:
    USD per request; candidates above it go last, and the other rule orders the rest (the
    best-predicted one when it is the only knob). With no knob set, the default willingness
    to pay applies."""

    willingness_to_pay: float | None = None
    quality_floor: float | None = None
    cost_ceiling: float | None = None

    def __post_init__(self) -> None:
        for name in ("willingness_to_pay", "quality_floor", "cost_ceiling"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value}")
        if self.quality_floor is not None and self.quality_floor > 1:
            raise ValueError(f"quality_floor is a probability, got {self.quality_floor}")

    @property
    def effective_willingness_to_pay(self) -> float | None:
        if self.willingness_to_pay is not None:
            return self.willingness_to_pay
        if self.quality_floor is None and self.cost_ceiling is None:
            return DEFAULT_WILLINGNESS_TO_PAY
        return None

    def describe(self) -> str:
        parts = []
        if self.cost_ceiling is not None:
            parts.append(f"cost_ceiling={self.cost_ceiling:g}")
        if self.quality_floor is not None:
            parts.append(f"quality_floor={self.quality_floor:g}")
        wtp = self.effective_willingness_to_pay
        if wtp is not None and self.quality_floor is None:
            parts.append(f"willingness_to_pay={wtp:g}")
        return ",".join(parts)


@dataclass(frozen=True, slots=True)
class Decision:
    """``ranked``: every candidate, best first — the engine tries them in this order, so a
    failing choice falls over to the next-best. ``scores``: predicted probability of a good
    answer; ``costs``: estimated USD for this request."""

    chosen: str
    ranked: tuple[str, ...]
    scores: dict[str, float] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    policy: str = ""

    def header_value(self) -> str:
        """For a response header: ``chosen; q=name:0.912,name:0.781`` in ranked order."""
        scores = ",".join(f"{n}:{self.scores[n]:.3f}" for n in self.ranked)
        return f"{self.chosen}; q={scores}"

    def log_fields(self) -> dict[str, object]:
        """For the request log: JSON-ready."""
        return {
            "router_chosen": self.chosen,
            "router_ranked": list(self.ranked),
            "router_scores": {n: round(self.scores[n], 4) for n in self.ranked},
            "router_costs": {n: self.costs[n] for n in self.ranked},
            "router_policy": self.policy,
        }
