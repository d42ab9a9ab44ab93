"""Stacking many prompts' features into one sparse matrix, for training and batch evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped, unused-ignore]

from polyroute.autorouter.features import Featurizer


def design_matrix(featurizer: Featurizer, prompts: Sequence[str]) -> sp.csr_matrix:
    """Rows: prompts. Columns: vocabulary, then dense features, then a constant 1 (the bias)."""
    indptr = [0]
    indices: list[np.ndarray] = []
    values: list[np.ndarray] = []
    dense = np.empty((len(prompts), featurizer.dense_size))
    for i, prompt in enumerate(prompts):
        f = featurizer.features(prompt)
        cols = np.sort(f.columns)
        indices.append(cols)
        values.append(np.full(len(cols), f.sparse_weight))
        indptr.append(indptr[-1] + len(cols))
        dense[i] = f.dense
    sparse = sp.csr_matrix(
        (np.concatenate(values) if values else np.empty(0),
         np.concatenate(indices) if indices else np.empty(0, dtype=np.intp), indptr),
        shape=(len(prompts), featurizer.vocabulary_size))
    return sp.hstack([sparse, sp.csr_matrix(dense),
                      sp.csr_matrix(np.ones((len(prompts), 1)))], format="csr")
