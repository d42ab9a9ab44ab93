"""Trained heads → each trained model's probability of answering a prompt well."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from polyroute.autorouter.artifact import RouterArtifact
from polyroute.autorouter.features import Featurizer


class QualityPredictor:
    def __init__(self, artifact: RouterArtifact) -> None:
        self.artifact = artifact
        self.heads = tuple(h.name for h in artifact.heads)
        self._featurizer = Featurizer(
            {term: i for i, term in enumerate(artifact.vocabulary)},
            artifact.dense_mean, artifact.dense_scale, artifact.word_vectors)
        self._sparse = np.ascontiguousarray(artifact.sparse_weights, dtype=np.float64)
        self._dense = np.ascontiguousarray(artifact.dense_weights, dtype=np.float64)
        self._bias = artifact.bias.astype(np.float64)

    def logits(self, prompt: str) -> npt.NDArray[np.float64]:
        f = self._featurizer.features(prompt)
        z = self._bias + f.dense @ self._dense
        if len(f.columns):
            z = z + self._sparse[f.columns].sum(axis=0) * f.sparse_weight
        return z

    def probabilities(self, prompt: str) -> npt.NDArray[np.float64]:
        """One probability per head, in :attr:`heads` order."""
        out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-self.logits(prompt)))
        return out

    def probability_matrix(self, prompts: Sequence[str]) -> npt.NDArray[np.float64]:
        out = np.empty((len(prompts), len(self.heads)))
        for i, prompt in enumerate(prompts):
            out[i] = self.probabilities(prompt)
        return out
