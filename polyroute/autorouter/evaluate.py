"""Scoring a router against the baselines on held-out prompts, with bootstrap intervals.

Every figure is computed once on all evaluated prompts (the value) and again on ``resamples``
bootstrap resamples of the prompts (the 95 % percentile interval), with the router's
predictions held fixed: the interval is the uncertainty of measuring on this many prompts.

Baselines: each single model; *always-strongest* (best mean quality here) and
*always-cheapest*; *best single model* at a budget (the best one affordable); *random mix*
(mixing single models at random: their hull, RouterBench's zero router); *per-task best*
(for each task the models best on these very prompts — hindsight, an upper bound of
task-level routing); *oracle* (per prompt the cheapest model that does best).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from polyroute.autorouter.holdout import Scored
from polyroute.autorouter.metrics import (
    aiq,
    apgr,
    choices_for_knob,
    cost_at_quality,
    cpt,
    oracle_choice,
    quality_at_cost,
    upper_hull,
)

BUDGET_SHARES = (0.05, 0.10, 0.15, 0.25, 0.50, 1.00)
CURVES = ("router", "best single model", "random mix", "per-task best", "oracle")
FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class PairReport:
    strong: str
    weak: str
    apgr: Estimate
    cpt50: Estimate
    cpt80: Estimate
    oracle_apgr: Estimate


@dataclass(frozen=True, slots=True)
class TableReport:
    name: str
    source: str
    cost_kind: str
    models: tuple[str, ...]
    prompts: int
    dropped_seen: int
    dropped_incomplete: int
    strongest: str
    cheapest: str
    single: dict[str, tuple[Estimate, Estimate]]  # model -> (quality, cost)
    points: dict[str, tuple[Estimate, Estimate]]  # point baselines -> (quality, cost)
    budgets: dict[float, dict[str, Estimate]]  # share of strongest's cost -> curve -> quality
    match_cost: Estimate  # USD per prompt at which the router reaches the strongest's quality
    match_share: Estimate  # the same, as a share of the strongest's cost
    aiq: dict[str, Estimate]
    pair: PairReport | None
    curves: dict[str, FloatArray]  # hulls on all prompts, for the plot
    router_points: FloatArray  # the router's raw (cost, quality) over the knob


@dataclass(frozen=True, slots=True)
class _Inputs:
    quality: FloatArray
    cost: FloatArray
    router: IndexArray  # (knob settings, prompts) choices
    oracle_knob: IndexArray
    oracle: IndexArray
    task_ids: IndexArray
    tasks: int
    grid: FloatArray
    strong_score: FloatArray | None
    strongest: int
    cheapest: int


def evaluate(scored: Scored, resamples: int = 200, seed: int = 0) -> TableReport:
    table = scored.table
    q, c = table.quality, table.cost
    if not len(table):
        raise ValueError(f"{table.name}: no prompts to evaluate")
    strongest = int(np.argmax(q.mean(axis=0)))
    cheapest = int(np.argmin(c.mean(axis=0)))
    grid = _knob_grid(np.r_[scored.estimated_cost.ravel(), c.ravel()])
    names, task_ids = np.unique(np.array(table.tasks), return_inverse=True)
    strong_score = None
    if len(table.models) == 2:
        weak = 1 - strongest
        strong_score = scored.predicted[:, strongest] - scored.predicted[:, weak]
    inputs = _Inputs(
        quality=q, cost=c,
        router=choices_for_knob(scored.predicted, scored.estimated_cost, grid),
        oracle_knob=choices_for_knob(q, c, grid), oracle=oracle_choice(q, c),
        task_ids=task_ids.astype(np.intp), tasks=len(names), grid=grid,
        strong_score=strong_score, strongest=strongest, cheapest=cheapest)
    everything = np.arange(len(table), dtype=np.intp)
    value, curves, router_points = _measure(inputs, everything, keep_curves=True)
    rng = np.random.default_rng(seed)
    draws = [_measure(inputs, rng.integers(0, len(table), len(table)).astype(np.intp))[0]
             for _ in range(resamples)]

    def est(key: str) -> Estimate:
        samples = np.array([d[key] for d in draws], dtype=np.float64)
        finite = samples[np.isfinite(samples)]
        if len(finite) < max(1, len(samples) // 2):  # mostly undefined: no interval
            return Estimate(value[key], float("nan"), float("nan"))
        low, high = np.percentile(finite, [2.5, 97.5])
        return Estimate(value[key], float(low), float(high))

    models = table.models
    pair = None
    if strong_score is not None:
        pair = PairReport(models[strongest], models[1 - strongest], est("pair/apgr"),
                          est("pair/cpt50"), est("pair/cpt80"), est("pair/oracle_apgr"))
    return TableReport(
        name=table.name, source=table.source, cost_kind=table.cost_kind.value, models=models,
        prompts=len(table), dropped_seen=scored.dropped_seen,
        dropped_incomplete=scored.dropped_incomplete,
        strongest=models[strongest], cheapest=models[cheapest],
        single={m: (est(f"single_q/{j}"), est(f"single_c/{j}")) for j, m in enumerate(models)},
        points={p: (est(f"point_q/{p}"), est(f"point_c/{p}"))
                for p in ("always-strongest", "always-cheapest", "oracle")},
        budgets={s: {k: est(f"budget/{s}/{k}") for k in CURVES} for s in BUDGET_SHARES},
        match_cost=est("match/usd"), match_share=est("match/share"),
        aiq={k: est(f"aiq/{k}") for k in CURVES if k != "best single model"},
        pair=pair, curves=curves, router_points=router_points)


def _knob_grid(costs: FloatArray) -> FloatArray:
    positive = costs[np.isfinite(costs) & (costs > 0)]
    low = positive.min() if len(positive) else 1e-6
    high = positive.max() if len(positive) else 1.0
    grid: FloatArray = np.r_[0.0, np.geomspace(low * 1e-2, high * 1e4, 160), np.inf]
    return grid


def _measure(x: _Inputs, idx: IndexArray,
             keep_curves: bool = False) -> tuple[dict[str, float], dict[str, FloatArray],
                                                 FloatArray]:
    q, c = x.quality[idx], x.cost[idx]
    rows = np.arange(len(idx))
    out: dict[str, float] = {}
    single_q, single_c = q.mean(axis=0), c.mean(axis=0)
    models = range(q.shape[1])

    def picked(choice: IndexArray) -> tuple[FloatArray, FloatArray]:
        chosen = choice[:, idx]
        return q[rows, chosen].mean(axis=1), c[rows, chosen].mean(axis=1)

    router_q, router_c = picked(x.router)
    oracle_q, oracle_c = picked(x.oracle_knob)
    task_c, task_q = _per_task_best(q, c, x.task_ids[idx], x.tasks, x.grid)
    hulls = {
        "router": upper_hull(router_c, router_q),
        "random mix": upper_hull(single_c, single_q),
        "per-task best": upper_hull(task_c, task_q),
        "oracle": upper_hull(np.r_[oracle_c, c[rows, x.oracle[idx]].mean()],
                             np.r_[oracle_q, q[rows, x.oracle[idx]].mean()]),
    }
    for j in models:
        out[f"single_q/{j}"] = float(single_q[j])
        out[f"single_c/{j}"] = float(single_c[j])
    for name, j in (("always-strongest", x.strongest), ("always-cheapest", x.cheapest)):
        out[f"point_q/{name}"], out[f"point_c/{name}"] = float(single_q[j]), float(single_c[j])
    out["point_q/oracle"] = float(q[rows, x.oracle[idx]].mean())
    out["point_c/oracle"] = float(c[rows, x.oracle[idx]].mean())
    strong_q, strong_c = float(single_q[x.strongest]), float(single_c[x.strongest])
    for share in BUDGET_SHARES:
        budget = share * strong_c
        for name, hull in hulls.items():
            out[f"budget/{share}/{name}"] = quality_at_cost(hull, budget)
        affordable = single_q[single_c <= budget + 1e-15]
        out[f"budget/{share}/best single model"] = (float(affordable.max()) if len(affordable)
                                                     else float("nan"))
    match = cost_at_quality(hulls["router"], strong_q)
    out["match/usd"] = match
    out["match/share"] = match / strong_c if strong_c > 0 else float("nan")
    low, high = float(single_c.min()), float(single_c.max())
    for name, hull in hulls.items():
        out[f"aiq/{name}"] = aiq(hull, low, high)
    if x.strong_score is not None:
        weak = 1 - x.strongest
        score = x.strong_score[idx]
        wq, sq = q[:, weak], q[:, x.strongest]
        out["pair/apgr"] = apgr(score, wq, sq)
        out["pair/cpt50"] = cpt(score, wq, sq, 0.5)
        out["pair/cpt80"] = cpt(score, wq, sq, 0.8)
        out["pair/oracle_apgr"] = apgr(sq - wq, wq, sq)
    curves = dict(hulls) if keep_curves else {}
    return out, curves, np.c_[router_c, router_q] if keep_curves else np.empty((0, 2))


def _per_task_best(q: FloatArray, c: FloatArray, task_ids: IndexArray, tasks: int,
                   grid: FloatArray) -> tuple[FloatArray, FloatArray]:
    counts = np.bincount(task_ids, minlength=tasks).astype(np.float64)
    sums_q = np.zeros((tasks, q.shape[1]))
    sums_c = np.zeros((tasks, q.shape[1]))
    np.add.at(sums_q, task_ids, q)
    np.add.at(sums_c, task_ids, c)
    present = counts > 0
    mean_q = sums_q[present] / counts[present, None]
    mean_c = sums_c[present] / counts[present, None]
    weight = counts[present] / counts.sum()
    choice = choices_for_knob(mean_q, mean_c, grid)  # (knob, tasks)
    rows = np.arange(len(weight))
    quality = (mean_q[rows, choice] * weight).sum(axis=1)
    cost = (mean_c[rows, choice] * weight).sum(axis=1)
    return cost, quality


def evaluate_all(scored: Sequence[Scored], resamples: int = 200,
                 seed: int = 0) -> list[TableReport]:
    return [evaluate(s, resamples, seed) for s in scored if len(s.table)]
