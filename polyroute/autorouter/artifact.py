"""The trained router as one file: vocabulary, scaling, per-model heads and their metadata.

Saved as an ``.npz`` whose zip entries carry a fixed timestamp, so the same training run gives
the same bytes (the determinism test compares them). Weights are stored as float16: half the
size, and the rounding moves predicted probabilities by well under 0.001.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.autorouter.features import WordVectors

FORMAT_VERSION = 1
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class CostFit:
    """A model's cost as one source billed or priced it, fitted on the training rows:
    ``usd ≈ usd_per_input_token × input tokens + usd_per_call`` (the output share)."""

    source: str
    usd_per_input_token: float
    usd_per_call: float

    def estimate(self, input_tokens: int) -> float:
        return self.usd_per_input_token * input_tokens + self.usd_per_call


@dataclass(frozen=True, slots=True)
class HeadInfo:
    """What training saw of one model: a profile a configured model can be mapped to."""

    name: str
    sources: tuple[str, ...]
    prompts: int
    mean_quality: float
    mean_cost: float
    cost_fits: tuple[CostFit, ...]

    def cost_fit(self, source: str) -> CostFit:
        for fit in self.cost_fits:
            if fit.source == source:
                return fit
        return self.cost_fits[0]


@dataclass(frozen=True, slots=True)
class RouterArtifact:
    vocabulary: tuple[str, ...]
    dense_mean: npt.NDArray[np.float64]
    dense_scale: npt.NDArray[np.float64]
    sparse_weights: npt.NDArray[np.float32]  # (vocabulary, heads)
    dense_weights: npt.NDArray[np.float32]  # (dense features, heads)
    bias: npt.NDArray[np.float32]  # (heads,)
    heads: tuple[HeadInfo, ...]
    seen_prompts: npt.NDArray[np.uint64]  # sorted hashes of every training prompt
    training: dict[str, Any] = field(default_factory=dict)
    word_vectors: WordVectors | None = None
    """The static word-vector table whose prompt means are the last dense features (None:
    lexical features only)."""

    def head_index(self) -> dict[str, int]:
        return {h.name: i for i, h in enumerate(self.heads)}

    def save(self, path: Path | str) -> None:
        meta = {
            "format_version": FORMAT_VERSION,
            "vocabulary": list(self.vocabulary),
            "heads": [asdict(h) for h in self.heads],
            "training": self.training,
        }
        arrays: dict[str, npt.NDArray[Any]] = {
            "meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
            "dense_mean": self.dense_mean.astype(np.float64),
            "dense_scale": self.dense_scale.astype(np.float64),
            "sparse_weights": self.sparse_weights.astype(np.float16),
            "dense_weights": self.dense_weights.astype(np.float32),
            "bias": self.bias.astype(np.float32),
            "seen_prompts": self.seen_prompts.astype(np.uint64),
        }
        if self.word_vectors is not None:
            arrays["word_vectors_words"] = np.array(self.word_vectors.words)
            arrays["word_vectors"] = self.word_vectors.vectors.astype(np.float16)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(arrays):
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, arrays[name], allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, buffer.getvalue())

    @classmethod
    def load(cls, path: Path | str) -> RouterArtifact:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            if meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"{path}: router artifact format "
                                 f"{meta.get('format_version')}, expected {FORMAT_VERSION}")
            heads = tuple(HeadInfo(**{
                **h, "sources": tuple(h["sources"]),
                "cost_fits": tuple(CostFit(**f) for f in h["cost_fits"])})
                for h in meta["heads"])
            table = None
            if "word_vectors" in data.files:
                table = WordVectors(tuple(str(w) for w in data["word_vectors_words"]),
                                    data["word_vectors"].astype(np.float32))
            return cls(
                word_vectors=table,
                vocabulary=tuple(meta["vocabulary"]),
                dense_mean=data["dense_mean"], dense_scale=data["dense_scale"],
                sparse_weights=data["sparse_weights"].astype(np.float32),
                dense_weights=data["dense_weights"], bias=data["bias"], heads=heads,
                seen_prompts=data["seen_prompts"], training=meta["training"])


def prompt_hash(prompt: str) -> int:
    return int.from_bytes(hashlib.blake2b(prompt.encode("utf-8"), digest_size=8).digest(),
                          "little")


def prompt_hashes(prompts: Iterable[str]) -> npt.NDArray[np.uint64]:
    return np.unique(np.fromiter((prompt_hash(p) for p in prompts), dtype=np.uint64))


def seen_mask(seen: npt.NDArray[np.uint64], prompts: list[str]) -> npt.NDArray[np.bool_]:
    """Which prompts the artifact was trained on (exact text)."""
    if not len(seen):
        return np.zeros(len(prompts), dtype=bool)
    hashes = np.fromiter((prompt_hash(p) for p in prompts), dtype=np.uint64, count=len(prompts))
    pos = np.searchsorted(seen, hashes).clip(max=len(seen) - 1)
    found: npt.NDArray[np.bool_] = seen[pos] == hashes
    return found
