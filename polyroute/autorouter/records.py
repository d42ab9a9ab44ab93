"""The one shape every routing-data format is normalised to: a table of prompts × models.

A table holds the prompts of one source whose models were all asked the same prompts, so its
rows can be compared across models. Missing observations (a model never asked, a score left
empty in the source) are NaN; training masks them, evaluation drops incomplete rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

FloatMatrix = npt.NDArray[np.float64]


class CostKind(StrEnum):
    MEASURED = "measured"  # real USD billed per query, as the source recorded it
    ESTIMATED = "estimated"  # list price × estimated token counts (see costs.py)


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """``quality[i, j]`` in 0..1 is how well ``models[j]`` answered ``prompts[i]``;
    ``cost[i, j]`` is what that answer cost in USD."""

    source: str  # format and origin, e.g. "routerbench", "routellm", "llmrouter", "traffic"
    models: tuple[str, ...]
    prompts: list[str]
    tasks: list[str]  # benchmark, subject or task name per prompt: what splits and baselines use
    quality: FloatMatrix
    cost: FloatMatrix
    cost_kind: CostKind
    files: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        shape = (len(self.prompts), len(self.models))
        if self.quality.shape != shape or self.cost.shape != shape:
            raise ValueError(f"{self.source}: quality {self.quality.shape} and cost "
                             f"{self.cost.shape} must both be {shape}")
        if len(self.tasks) != len(self.prompts):
            raise ValueError(f"{self.source}: {len(self.tasks)} tasks for "
                             f"{len(self.prompts)} prompts")

    @property
    def name(self) -> str:
        return f"{self.source}[{', '.join(self.models)}]" if len(self.models) <= 3 \
            else f"{self.source}[{len(self.models)} models]"

    def __len__(self) -> int:
        return len(self.prompts)

    def take(self, rows: npt.NDArray[np.intp]) -> RoutingTable:
        return RoutingTable(
            source=self.source, models=self.models,
            prompts=[self.prompts[i] for i in rows], tasks=[self.tasks[i] for i in rows],
            quality=self.quality[rows], cost=self.cost[rows], cost_kind=self.cost_kind,
            files=self.files)

    def complete_rows(self) -> RoutingTable:
        """Only the prompts every model has a quality and a cost for."""
        ok = np.isfinite(self.quality).all(axis=1) & np.isfinite(self.cost).all(axis=1)
        return self.take(np.flatnonzero(ok))
