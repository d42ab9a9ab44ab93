"""A deterministic stand-in for a tokenizer.

Pieces are runs of ASCII letters/digits or single other characters, each with the
whitespace before it. Joining the pieces gives back the input exactly, and no piece
ends inside a code point, so a stream of them is valid UTF-8 chunk by chunk.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\s*(?:[A-Za-z0-9]+|\S)|\s+")


def split_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(split_tokens(text))


def group_tokens(tokens: list[str], per_chunk: int) -> list[str]:
    size = max(1, per_chunk)
    return ["".join(tokens[start : start + size]) for start in range(0, len(tokens), size)]
