"""Prompt → feature vector, cheap enough for the request path (tens of microseconds).

Sparse part: lower-cased word unigrams and bigrams, plus a few shape tokens, looked up in a
vocabulary fixed at training time (unseen n-grams are simply absent). Dense part: length and
code / math / multiple-choice markers. Few-shot prompts put the actual question last, and the
shots repeat across prompts, so only the head and the tail of a long prompt are read: it keeps
the cost bounded and loses almost nothing (the shots carry little about the question).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from polyroute.autorouter.text import visible_text

_WORD = re.compile(r"[a-z0-9]+|[^a-z0-9\s]", re.ASCII)
# Substring counts, not one alternation regex: str.count runs in C and is ~10x faster here.
_CODE_MARKS = ("```", "def ", "return", "function", "{", "}", ";", "import ", "class ", "=>",
               "==", "()", "print(")
_MATH_MARKS = ("$", "\\", "^", "sqrt", "equation", "=", "+", "frac", "integer", "solve")
_ARITHMETIC = re.compile(r"[0-9] ?[-+*/=<>] ?[0-9]")
_CHOICE = re.compile(r"(?m)^\s*\(?[A-Ea-e][).:]\s")
_DIGIT = re.compile(r"[0-9]")
_UPPER = re.compile(r"[A-Z]")

DENSE_NAMES = (
    "log_chars", "log_lines", "log_words", "digit_share", "upper_share", "non_ascii_share",
    "code_marks", "math_marks", "choice_lines", "shots", "question_marks", "has_blank",
)


@dataclass(frozen=True, slots=True)
class PromptFeatures:
    """Vocabulary columns present in the prompt (each weighs ``sparse_weight``) and the dense
    features, already standardised."""

    columns: npt.NDArray[np.intp]
    sparse_weight: float
    dense: npt.NDArray[np.float64]


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(text: str, tokens: list[str]) -> list[str]:
    """Unigrams and bigrams of the visible text, plus a shape token for the last line."""
    grams = list(tokens)
    grams += [f"{a} {b}" for a, b in itertools.pairwise(tokens)]
    tail = text.rstrip().rsplit("\n", 1)[-1].lower()
    grams.append("<last> " + " ".join(_WORD.findall(tail)[-3:]))
    return grams


def dense_raw(prompt: str, text: str, tokens: list[str]) -> npt.NDArray[np.float64]:
    n = max(1, len(text))
    return np.array([
        math.log1p(len(prompt)),
        math.log1p(prompt.count("\n")),
        math.log1p(len(tokens)),
        len(_DIGIT.findall(text)) / n,
        len(_UPPER.findall(text)) / n,
        (len(text.encode("utf-8")) - len(text)) / n,  # extra UTF-8 bytes: non-Latin script
        math.log1p(sum(text.count(m) for m in _CODE_MARKS)),
        math.log1p(sum(text.count(m) for m in _MATH_MARKS) + len(_ARITHMETIC.findall(text))),
        math.log1p(len(_CHOICE.findall(text))),
        math.log1p(prompt.lower().count("answer:")),
        math.log1p(text.count("?")),
        float("_" in text),
    ])


@dataclass(frozen=True, slots=True)
class WordVectors:
    """A static word-vector table (``distill.py``): a prompt's vector is the mean of its
    distinct words' rows; words outside the table add nothing."""

    words: tuple[str, ...]
    vectors: npt.NDArray[np.float32]  # (words, dimensions), unit rows

    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    @property
    def dimensions(self) -> int:
        return int(self.vectors.shape[1])


class _Embedder:
    def __init__(self, table: WordVectors) -> None:
        self._index = table.index()
        self._vectors = table.vectors.astype(np.float64)
        self._zero = np.zeros(table.dimensions)

    def mean(self, tokens: list[str]) -> npt.NDArray[np.float64]:
        index = self._index
        rows = {index[t] for t in tokens if t in index}
        if not rows:
            return self._zero
        picked: npt.NDArray[np.float64] = self._vectors[
            np.fromiter(rows, dtype=np.intp, count=len(rows))].mean(axis=0)
        return picked


class Featurizer:
    """Holds the training-time vocabulary and dense-feature scaling; immutable after build."""

    def __init__(self, vocabulary: Mapping[str, int], dense_mean: npt.NDArray[np.float64],
                 dense_scale: npt.NDArray[np.float64],
                 word_vectors: WordVectors | None = None) -> None:
        self._vocabulary = dict(vocabulary)
        self._dense_mean = dense_mean
        self._dense_scale = dense_scale
        self.word_vectors = word_vectors
        self._embedder = _Embedder(word_vectors) if word_vectors is not None else None

    @property
    def vocabulary_size(self) -> int:
        return len(self._vocabulary)

    @property
    def dense_size(self) -> int:
        return len(self._dense_mean)

    def vocabulary_terms(self) -> list[str]:
        terms = [""] * len(self._vocabulary)
        for term, column in self._vocabulary.items():
            terms[column] = term
        return terms

    @property
    def dense_mean(self) -> npt.NDArray[np.float64]:
        return self._dense_mean

    @property
    def dense_scale(self) -> npt.NDArray[np.float64]:
        return self._dense_scale

    def features(self, prompt: str) -> PromptFeatures:
        text = visible_text(prompt)
        tokens = words(text)
        vocabulary = self._vocabulary
        found = {vocabulary[g] for g in ngrams(text, tokens) if g in vocabulary}
        columns = np.fromiter(found, dtype=np.intp, count=len(found))
        weight = 1.0 / math.sqrt(len(found)) if found else 0.0
        dense = (self.dense_raw(prompt, text, tokens) - self._dense_mean) / self._dense_scale
        return PromptFeatures(columns, weight, dense)

    def dense_raw(self, prompt: str, text: str,
                  tokens: list[str]) -> npt.NDArray[np.float64]:
        raw = dense_raw(prompt, text, tokens)
        if self._embedder is None:
            return raw
        return np.concatenate([raw, self._embedder.mean(tokens)])


def build_featurizer(prompts: list[str], min_prompts: int = 3,
                     max_terms: int = 60_000,
                     word_vectors: WordVectors | None = None) -> Featurizer:
    """Vocabulary: n-grams seen in at least ``min_prompts`` prompts, the most common first
    (ties broken alphabetically so the same data always gives the same columns)."""
    counts: dict[str, int] = {}
    width = len(DENSE_NAMES) + (word_vectors.dimensions if word_vectors is not None else 0)
    unscaled = Featurizer({}, np.zeros(width), np.ones(width), word_vectors)
    dense = np.empty((len(prompts), width))
    for i, prompt in enumerate(prompts):
        text = visible_text(prompt)
        tokens = words(text)
        for gram in set(ngrams(text, tokens)):
            counts[gram] = counts.get(gram, 0) + 1
        dense[i] = unscaled.dense_raw(prompt, text, tokens)
    kept = sorted((g for g, c in counts.items() if c >= min_prompts),
                  key=lambda g: (-counts[g], g))[:max_terms]
    mean = dense.mean(axis=0) if len(prompts) else np.zeros(width)
    scale = dense.std(axis=0) if len(prompts) else np.ones(width)
    scale = np.where(scale > 1e-9, scale, 1.0)
    return Featurizer({g: i for i, g in enumerate(kept)}, mean, scale, word_vectors)
