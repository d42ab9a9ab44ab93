"""What evaluation scores: predictions for prompts the predicting model never saw.

Two ways to get them. :func:`artifact_predictions` uses a trained artifact on a directory and
drops any prompt whose exact text was in its training set. :func:`cross_validated_predictions`
retrains the same recipe k times on the directory itself, each time holding out one fold, so
every prompt is scored by a model that never saw it. Folds are drawn by prompt text — and for
RouteLLM data by subject, so a held-out subject's questions are all unseen and no question of
it can leak through a sibling.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from polyroute.autorouter.artifact import RouterArtifact, seen_mask
from polyroute.autorouter.costs import estimate_tokens
from polyroute.autorouter.predictor import QualityPredictor
from polyroute.autorouter.profiles import UnknownProfile, resolve_profile
from polyroute.autorouter.records import RoutingTable
from polyroute.autorouter.training import TrainingConfig, train_router_iterates

log = logging.getLogger("polyroute.autorouter")

FloatMatrix = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Scored:
    """One table's held-out prompts with the router's view of them."""

    table: RoutingTable  # complete rows only
    predicted: FloatMatrix  # P(good answer) per prompt and model
    estimated_cost: FloatMatrix  # what the router believes each call costs (USD)
    dropped_seen: int
    dropped_incomplete: int
    prior_quality: dict[str, float]  # mean quality training saw, per model


def group_keys(table: RoutingTable) -> list[str]:
    """What must stay on one side of a split: the subject for RouteLLM, else the prompt."""
    return list(table.tasks) if table.source == "routellm" else list(table.prompts)


def assign_folds(keys: Sequence[str], folds: int, seed: int) -> npt.NDArray[np.intp]:
    unique = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of = {key: int(order[i] % folds) for i, key in enumerate(unique)}
    return np.array([fold_of[k] for k in keys], dtype=np.intp)


def artifact_predictions(artifact: RouterArtifact, tables: Sequence[RoutingTable],
                         profiles: Mapping[str, str] | None = None) -> list[Scored]:
    predictor = QualityPredictor(artifact)
    scored = []
    for table in tables:
        complete = table.complete_rows()
        seen = seen_mask(artifact.seen_prompts, complete.prompts)
        fresh = complete.take(np.flatnonzero(~seen))
        if seen.any():
            log.warning("%s: %d of %d prompts were in the artifact's training data; left out",
                        table.name, int(seen.sum()), len(complete))
        try:
            result = _score(predictor, artifact, fresh, profiles or {})
        except UnknownProfile as exc:
            log.warning("%s: skipped: %s (map it with --profile MODEL=PROFILE)", table.name, exc)
            continue
        scored.append(_with_counts(result, int(seen.sum()), len(table) - len(complete)))
    return scored


def cross_validated_predictions(tables: Sequence[RoutingTable], folds: int = 5, seed: int = 0,
                                config: TrainingConfig | None = None) -> list[Scored]:
    config = config or TrainingConfig()
    return cross_validated_iterates(tables, folds, seed, config,
                                    (config.max_iterations,))[config.max_iterations]


def cross_validated_iterates(tables: Sequence[RoutingTable], folds: int, seed: int,
                             config: TrainingConfig,
                             iterations: Sequence[int]) -> dict[int, list[Scored]]:
    """The held-out predictions of every iteration limit in ``iterations``, from one training
    run per fold (``train_router_iterates``)."""
    fold_ids = [assign_folds(group_keys(t), folds, seed) for t in tables]
    parts: dict[int, list[list[Scored]]] = {n: [[] for _ in tables] for n in iterations}
    for k in range(folds):
        train = [t.take(np.flatnonzero(f != k)) for t, f in zip(tables, fold_ids, strict=True)]
        log.info("fold %d/%d: training on %d prompts", k + 1, folds, sum(len(t) for t in train))
        artifacts = train_router_iterates(train, config, iterations)
        held = [t.take(np.flatnonzero(f == k)) for t, f in zip(tables, fold_ids, strict=True)]
        for n, artifact in artifacts.items():
            for i, table in enumerate(held):
                parts[n][i] += artifact_predictions(artifact, [table])
    return {n: [_concatenate(p) for p in by_table if p] for n, by_table in parts.items()}


def _score(predictor: QualityPredictor, artifact: RouterArtifact, table: RoutingTable,
           profiles: Mapping[str, str]) -> Scored:
    heads = artifact.head_index()
    columns = [resolve_profile(profiles.get(m, m), heads) for m in table.models]
    predicted = predictor.probability_matrix(table.prompts)[:, columns]
    tokens = np.array([estimate_tokens(p) for p in table.prompts])
    fits = [artifact.heads[c].cost_fit(table.source) for c in columns]
    estimated = np.stack([tokens * f.usd_per_input_token + f.usd_per_call for f in fits],
                         axis=1) if len(table) else np.empty((0, len(columns)))
    prior = {m: artifact.heads[c].mean_quality
             for m, c in zip(table.models, columns, strict=True)}
    return Scored(table, predicted, estimated.astype(np.float64), 0, 0, prior)


def _with_counts(scored: Scored, seen: int, incomplete: int) -> Scored:
    return Scored(scored.table, scored.predicted, scored.estimated_cost, seen, incomplete,
                  scored.prior_quality)


def _concatenate(parts: list[Scored]) -> Scored:
    first = parts[0].table
    table = RoutingTable(
        source=first.source, models=first.models,
        prompts=[p for s in parts for p in s.table.prompts],
        tasks=[t for s in parts for t in s.table.tasks],
        quality=np.concatenate([s.table.quality for s in parts]),
        cost=np.concatenate([s.table.cost for s in parts]),
        cost_kind=first.cost_kind, files=first.files)
    prior = {m: float(np.mean([s.prior_quality[m] for s in parts])) for m in first.models}
    return Scored(table, np.concatenate([s.predicted for s in parts]),
                  np.concatenate([s.estimated_cost for s in parts]),
                  sum(s.dropped_seen for s in parts), sum(s.dropped_incomplete for s in parts),
                  prior)

