"""Fitting the per-model quality heads: L2-regularised logistic regression on soft labels.

All heads are fitted in one L-BFGS run over a block objective (each head's mean log-loss over
the rows that have its label, plus its penalty); heads share no parameters, so this equals
fitting them one by one, only with a single pass over the sparse matrix per step. Nothing is
random — zero start, full batch — so one data set always gives one artifact. Training needs
scipy (sparse matrices and L-BFGS); serving needs only numpy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.optimize  # type: ignore[import-untyped, unused-ignore]
import scipy.sparse as sp  # type: ignore[import-untyped, unused-ignore]

from polyroute.autorouter.artifact import CostFit, HeadInfo, RouterArtifact, prompt_hashes
from polyroute.autorouter.costs import canonical_model, estimate_tokens
from polyroute.autorouter.design import design_matrix
from polyroute.autorouter.distill import load_table
from polyroute.autorouter.features import WordVectors, build_featurizer
from polyroute.autorouter.records import RoutingTable

log = logging.getLogger("polyroute.autorouter")


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    l2_sparse: float = 1e-4  # chosen by 5-fold CV on the shipped data (docs/router.md)
    l2_dense: float = 1e-5
    max_iterations: int = 400
    """Part of the regularisation, not a budget to raise: the objective is on its plateau by
    then, and converging further (or rescaled) routes held-out prompts worse (docs/router.md,
    "Convergence")."""
    min_prompts_per_term: int = 3
    max_terms: int = 40_000
    seed: int = 0  # recorded; fitting is deterministic, the seed drives evaluation's folds
    word_vectors: str | None = None
    """A static word-vector table (``distill.py``) whose prompt means become dense features;
    None: lexical features only."""


@dataclass(frozen=True, slots=True)
class _Stacked:
    prompts: list[str]
    labels: npt.NDArray[np.float64]  # (rows, heads), NaN where the head has no label
    costs: npt.NDArray[np.float64]
    heads: list[str]
    sources: list[list[str]]
    blocks: list[tuple[slice, npt.NDArray[np.intp]]]
    source_rows: dict[str, list[int]]


def train_router(tables: Sequence[RoutingTable],
                 config: TrainingConfig | None = None) -> RouterArtifact:
    config = config or TrainingConfig()
    return train_router_iterates(tables, config, (config.max_iterations,))[config.max_iterations]


def train_router_iterates(tables: Sequence[RoutingTable], config: TrainingConfig,
                          iterations: Sequence[int]) -> dict[int, RouterArtifact]:
    """One L-BFGS run to the largest of ``iterations``, kept after each of them: the artifact
    for ``n`` is the one ``max_iterations=n`` trains, byte for byte (the path is deterministic
    and the limit only ends it), so a convergence study costs one run, not one per limit."""
    started = time.perf_counter()
    data = _stack(tables)
    table = None
    if config.word_vectors is not None:
        words, vectors = load_table(Path(config.word_vectors))
        table = WordVectors(tuple(words), vectors)
    featurizer = build_featurizer(data.prompts, config.min_prompts_per_term, config.max_terms,
                                  table)
    design = design_matrix(featurizer, data.prompts)
    fitted = _fit_heads(design, data.labels, data.blocks, featurizer.vocabulary_size, config,
                        iterations)
    vocab = featurizer.vocabulary_size
    heads = tuple(_head_info(name, data, j) for j, name in enumerate(data.heads))
    elapsed = time.perf_counter() - started
    log.info("trained %d heads on %d prompts in %.1f s", len(heads), len(data.prompts), elapsed)
    seen = prompt_hashes(data.prompts)
    artifacts = {}
    for limit, weights in fitted.items():
        used = replace(config, max_iterations=limit)
        training: dict[str, Any] = {
            "config": {**asdict(used), "word_vectors": Path(used.word_vectors).name
                       if used.word_vectors else None},  # the name: bytes stay path-free
            "tables": [{"source": t.source, "prompts": len(t), "models": list(t.models),
                        "files": [f.rsplit("/", 1)[-1] for f in t.files]} for t in tables],
            "rows": len(data.prompts),
        }
        artifacts[limit] = RouterArtifact(
            vocabulary=tuple(featurizer.vocabulary_terms()),
            dense_mean=featurizer.dense_mean, dense_scale=featurizer.dense_scale,
            sparse_weights=weights[:vocab].astype(np.float32),
            dense_weights=weights[vocab:-1].astype(np.float32),
            bias=weights[-1].astype(np.float32), heads=heads,
            seen_prompts=seen, training=training, word_vectors=table)
    return artifacts


def _stack(tables: Sequence[RoutingTable]) -> _Stacked:
    heads: list[str] = []
    column: dict[str, int] = {}
    sources: list[list[str]] = []
    for table in tables:
        for model in table.models:
            key = canonical_model(model)
            if key not in column:
                column[key] = len(heads)
                heads.append(key)
                sources.append([])
            if table.source not in sources[column[key]]:
                sources[column[key]].append(table.source)
    total = sum(len(t) for t in tables)
    labels = np.full((total, len(heads)), np.nan)
    costs = np.full((total, len(heads)), np.nan)
    prompts: list[str] = []
    blocks: list[tuple[slice, npt.NDArray[np.intp]]] = []
    source_rows: dict[str, list[int]] = {}
    start = 0
    for table in tables:
        cols = np.array([column[canonical_model(m)] for m in table.models], dtype=np.intp)
        rows = slice(start, start + len(table))
        labels[rows, cols] = table.quality
        costs[rows, cols] = table.cost
        blocks.append((rows, cols))
        source_rows.setdefault(table.source, []).extend(range(rows.start, rows.stop))
        prompts += table.prompts
        start += len(table)
    return _Stacked(prompts, labels, costs, heads, sources, blocks, source_rows)


def _fit_heads(design: sp.csr_matrix, labels: npt.NDArray[np.float64],
               blocks: Sequence[tuple[slice, npt.NDArray[np.intp]]], vocabulary: int,
               config: TrainingConfig,
               iterations: Sequence[int]) -> dict[int, npt.NDArray[np.float64]]:
    """``blocks``: (rows, heads) of each table. A head is only evaluated on the rows that can
    label it, which makes a step several times cheaper than the dense rows × heads product.
    Returns the weights after each of ``iterations`` (the last ones wherever L-BFGS stopped
    sooner)."""
    observed = np.isfinite(labels)
    targets = np.where(observed, labels, 0.0)
    per_head = observed.sum(axis=0).clip(min=1)
    features, heads = design.shape[1], labels.shape[1]
    penalty = np.full(features, config.l2_sparse)
    penalty[vocabulary:-1] = config.l2_dense
    penalty[-1] = 0.0  # the bias is not shrunk: it carries the model's base rate
    parts = [(design[rows], design[rows].T.tocsr(), cols, targets[rows][:, cols],
              observed[rows][:, cols], per_head[cols]) for rows, cols in blocks]
    # Only (feature, head) pairs whose feature occurs in a row the head is fitted on can move
    # off zero; optimising just those gives the same weights with far fewer parameters.
    active = np.zeros((features, heads), dtype=bool)
    for x, _, cols, _, seen, _ in parts:
        for k, head in enumerate(cols):
            rows_seen = np.flatnonzero(seen[:, k])
            active[np.unique(x[rows_seen].indices), head] = True
    active[vocabulary:] = True
    packed = np.flatnonzero(active.ravel())

    packed_penalty = np.broadcast_to(penalty[:, None], (features, heads)).ravel()[packed]

    def objective(flat: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        full = np.zeros(features * heads)
        full[packed] = flat
        w = full.reshape(features, heads)
        grad = np.zeros((features, heads))
        value = 0.5 * float(packed_penalty @ (flat * flat))
        for x, x_t, cols, y, seen, count in parts:
            z = x @ w[:, cols]
            value += float((((np.logaddexp(0.0, z) - y * z) * seen).sum(axis=0) / count).sum())
            grad[:, cols] += x_t @ ((_sigmoid(z) - y) * seen / count)
        return value, grad.ravel()[packed] + packed_penalty * flat

    kept: dict[int, npt.NDArray[np.float64]] = {}
    done = [0]

    def keep(intermediate_result: scipy.optimize.OptimizeResult) -> None:
        done[0] += 1
        if done[0] in iterations:
            kept[done[0]] = intermediate_result.x.copy()

    result = scipy.optimize.minimize(
        objective, np.zeros(len(packed)), jac=True, method="L-BFGS-B", callback=keep,
        options={"maxiter": max(iterations)})
    log.info("L-BFGS: %d parameters, %d iterations, %s", len(packed), result.nit,
             result.message)

    def unpacked(flat: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        full = np.zeros(features * heads)
        full[packed] = flat
        return full.reshape(features, heads)

    return {n: unpacked(kept.get(n, result.x)) for n in iterations}


def _sigmoid(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def _head_info(name: str, data: _Stacked, j: int) -> HeadInfo:
    labelled = np.isfinite(data.labels[:, j])
    fits = []
    for source, rows in data.source_rows.items():
        use = np.zeros(len(data.prompts), dtype=bool)
        use[rows] = True
        use &= labelled & np.isfinite(data.costs[:, j])
        if use.any():
            tokens = np.array([estimate_tokens(data.prompts[i]) for i in np.flatnonzero(use)],
                              dtype=np.float64)
            per_token, per_call = _fit_cost(tokens, data.costs[use, j])
            fits.append(CostFit(source, per_token, per_call))
    costs = data.costs[labelled, j]
    return HeadInfo(
        name=name, sources=tuple(data.sources[j]), prompts=int(labelled.sum()),
        mean_quality=round(float(data.labels[labelled, j].mean()), 6),
        mean_cost=float(np.nanmean(costs)) if np.isfinite(costs).any() else 0.0,
        cost_fits=tuple(fits))


def _fit_cost(tokens: npt.NDArray[np.float64],
              cost: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Least squares of cost on input tokens; a negative term is refitted as zero."""
    if len(cost) < 2 or np.ptp(tokens) == 0:
        return 0.0, float(cost.mean()) if len(cost) else 0.0
    solution = np.linalg.lstsq(np.c_[tokens, np.ones_like(tokens)], cost, rcond=None)[0]
    slope, intercept = float(solution[0]), float(solution[1])
    if intercept < 0:
        through_origin = float(tokens @ cost) / float(tokens @ tokens)
        return max(0.0, through_origin), 0.0
    if slope < 0:
        return 0.0, float(cost.mean())
    return slope, intercept
