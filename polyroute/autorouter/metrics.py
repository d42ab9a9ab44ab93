"""Routing metrics, as pure functions of arrays (hand-checked in tests/test_autorouter.py).

* A router's *curve* is the (mean cost, mean quality) of its decisions swept over the knob.
  Any two operating points can be mixed at random, so what a router offers is the upper
  concave hull of its points, non-decreasing in cost (RouterBench's convention).
* **AIQ** (RouterBench): the area under that hull over the cost range of the single models,
  divided by the range's width — mean quality over budgets. Below the hull's cheapest point the
  curve counts as that point's quality; past its dearest, as flat.
* **PGR / APGR / CPT** (RouteLLM), for a strong/weak pair: with a share ``s`` of prompts sent to
  the strong model (those the router ranks highest), PGR(s) = (q(s) − q_weak) / (q_strong −
  q_weak); APGR is its mean over s ∈ [0, 1]; CPT(x %) the least share reaching PGR ≥ x %.
  Tied router scores are routed together, i.e. the curve is linear across a tie — the expected
  result of breaking the tie at random.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def upper_hull(costs: Sequence[float] | FloatArray,
               qualities: Sequence[float] | FloatArray) -> FloatArray:
    """Rows (cost, quality) of the non-decreasing concave hull, cheapest first."""
    points = sorted(zip(np.asarray(costs, float), np.asarray(qualities, float), strict=True),
                    key=lambda p: (p[0], -p[1]))
    hull: list[tuple[float, float]] = []
    for c, q in points:
        if not (np.isfinite(c) and np.isfinite(q)):
            continue
        if hull and q <= hull[-1][1]:
            continue  # dominated: costs at least as much for no more quality
        while len(hull) >= 2:
            (c1, q1), (c2, q2) = hull[-2], hull[-1]
            if (q2 - q1) * (c - c1) <= (q - q1) * (c2 - c1):
                hull.pop()  # the middle point lies on or under the chord
            else:
                break
        hull.append((c, q))
    return np.array(hull, dtype=np.float64).reshape(-1, 2)


def quality_at_cost(hull: FloatArray, budget: float) -> float:
    """Best quality the hull reaches spending at most ``budget`` per prompt (NaN: can't)."""
    if not len(hull) or budget < hull[0, 0] - 1e-15:
        return float("nan")
    if budget >= hull[-1, 0]:
        return float(hull[-1, 1])
    return float(np.interp(budget, hull[:, 0], hull[:, 1]))


def cost_at_quality(hull: FloatArray, target: float) -> float:
    """Least cost per prompt at which the hull reaches ``target`` quality (NaN: never)."""
    if not len(hull) or target > hull[-1, 1] + 1e-12:
        return float("nan")
    if target <= hull[0, 1]:
        return float(hull[0, 0])
    return float(np.interp(target, hull[:, 1], hull[:, 0]))


def aiq(hull: FloatArray, cost_min: float, cost_max: float) -> float:
    if not len(hull) or cost_max <= cost_min:
        return float("nan")
    grid_c = np.unique(np.clip(np.r_[cost_min, hull[:, 0], cost_max], cost_min, cost_max))
    grid_q = np.interp(grid_c, hull[:, 0], hull[:, 1])  # flat outside the hull
    area = float(np.sum((grid_q[1:] + grid_q[:-1]) / 2 * np.diff(grid_c)))
    return area / (cost_max - cost_min)


def pgr_curve(strong_score: FloatArray, weak_quality: FloatArray,
              strong_quality: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(share of prompts sent to the strong model, PGR) at each distinct threshold."""
    n = len(strong_score)
    gap = float(strong_quality.mean() - weak_quality.mean())
    order = np.argsort(-strong_score, kind="stable")
    gains = (strong_quality - weak_quality)[order]
    sorted_scores = strong_score[order]
    # Cut only between distinct scores: a tie is routed all together.
    cuts = np.r_[0, np.flatnonzero(np.diff(sorted_scores) != 0) + 1, n]
    cumulative = np.r_[0.0, np.cumsum(gains)]
    share = cuts / n
    quality = (weak_quality.sum() + cumulative[cuts]) / n
    pgr = (quality - weak_quality.mean()) / gap if gap != 0 else np.full(len(cuts), np.nan)
    return share.astype(np.float64), np.asarray(pgr, dtype=np.float64)


def apgr(strong_score: FloatArray, weak_quality: FloatArray,
         strong_quality: FloatArray) -> float:
    share, pgr = pgr_curve(strong_score, weak_quality, strong_quality)
    return float(np.sum((pgr[1:] + pgr[:-1]) / 2 * np.diff(share)))


def cpt(strong_score: FloatArray, weak_quality: FloatArray, strong_quality: FloatArray,
        target_pgr: float) -> float:
    """Least share of strong calls reaching ``target_pgr`` (0.5 for CPT(50%))."""
    share, pgr = pgr_curve(strong_score, weak_quality, strong_quality)
    hit = np.flatnonzero(pgr >= target_pgr - 1e-12)
    if not len(hit):
        return float("nan")
    k = int(hit[0])
    if k == 0:
        return 0.0
    # Linear between the last cut short of the target and the first one reaching it.
    s0, s1, p0, p1 = share[k - 1], share[k], pgr[k - 1], pgr[k]
    return float(s0 + (target_pgr - p0) * (s1 - s0) / (p1 - p0))


def oracle_choice(quality: FloatArray, cost: FloatArray) -> npt.NDArray[np.intp]:
    """Per prompt, the cheapest model among those with the best quality."""
    best = quality.max(axis=1, keepdims=True)
    masked = np.where(quality >= best - 1e-12, cost, np.inf)
    choice: npt.NDArray[np.intp] = masked.argmin(axis=1)
    return choice


def choices_for_knob(predicted: FloatArray, estimated_cost: FloatArray,
                     willingness: FloatArray) -> npt.NDArray[np.intp]:
    """For each willingness to pay, each prompt's choice maximising p − cost / w.
    Shape (len(willingness), prompts). w = 0 means the cheapest; ties go to the cheaper."""
    out = np.empty((len(willingness), len(predicted)), dtype=np.intp)
    tiebreak = estimated_cost * 1e-9
    for k, w in enumerate(willingness):
        utility = (-estimated_cost if w <= 0 else predicted - estimated_cost / w) - tiebreak
        out[k] = utility.argmax(axis=1)
    return out
