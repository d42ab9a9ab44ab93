"""Opening the sources' CSV files: prompts with embedded newlines and very long fields."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import TextIO


def open_csv(path: Path) -> TextIO:
    # Few-shot prompts and model responses exceed the csv module's 128 KiB default field limit.
    csv.field_size_limit(sys.maxsize)
    return path.open(newline="", encoding="utf-8-sig")


def read_header(path: Path) -> list[str]:
    with open_csv(path) as handle:
        return next(csv.reader(handle), [])
