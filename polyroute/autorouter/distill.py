"""Static word vectors distilled from all-MiniLM-L6-v2, as a lookup table: how it is stored
and read. It is made by ``python -m polyroute.cache.distill`` (the encoder lives with the
semantic cache, a layer above this package).

The router's words are looked up, never encoded: a transformer does not fit the decision's
1 ms (docs/router.md). So, as Model2Vec does, the encoder is run once per word of its own
vocabulary — every whole word of its WordPiece vocabulary, a list that depends on no routing
data — and the vectors are reduced by PCA (fitted on the table itself) to a few dozen
dimensions and kept as a lookup table. A prompt's vector is then the mean of its words'
vectors: words that no training prompt shared still land near words that did ("astronomy"
near "physics"), which is what the lexical features cannot see.

Making it needs the ``[semantic]`` extra; serving needs only numpy.
Deterministic: the vocabulary is sorted and PCA is an SVD.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

DEFAULT_DIMENSIONS = 64
DEFAULT_TABLE = Path(__file__).parent / "data" / "word_vectors.npz"
_WHOLE_WORD = re.compile(r"^[a-z0-9]+$")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def whole_words(vocabulary: dict[str, int]) -> list[str]:
    """The vocabulary's whole lower-case words and numbers (no '##' pieces, no [unused])."""
    return sorted(w for w in vocabulary if _WHOLE_WORD.match(w))


def save_table(path: Path, words: list[str], table: npt.NDArray[np.float32]) -> None:
    """Fixed zip timestamps: the same table gives the same bytes."""
    arrays = {"words": np.array(words), "vectors": table.astype(np.float16)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, arrays[name], allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def load_table(path: Path) -> tuple[list[str], npt.NDArray[np.float32]]:
    with np.load(path, allow_pickle=False) as data:
        return [str(w) for w in data["words"]], data["vectors"].astype(np.float32)
