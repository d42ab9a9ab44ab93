"""RouterBench CSV: one row per prompt; per model a 0/1 column, ``<model>|model_response`` and
``<model>|total_cost`` (USD actually billed). Rows with an empty score are dropped by evaluation
(their quality is NaN here)."""

from __future__ import annotations

import ast
import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from polyroute.autorouter.readers.csv_text import open_csv
from polyroute.autorouter.records import CostKind, RoutingTable

COST_SUFFIX = "|total_cost"


def is_routerbench_header(header: Sequence[str]) -> bool:
    return "prompt" in header and any(col.endswith(COST_SUFFIX) for col in header)


def read_routerbench(paths: Sequence[Path]) -> list[RoutingTable]:
    """One table per distinct model set (files of one release share it)."""
    by_models: dict[tuple[str, ...], list[tuple[str, str, list[float], list[float]]]] = {}
    files: dict[tuple[str, ...], list[str]] = {}
    for path in paths:
        with open_csv(path) as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            models = tuple(c[: -len(COST_SUFFIX)] for c in header if c.endswith(COST_SUFFIX))
            rows = by_models.setdefault(models, [])
            files.setdefault(models, []).append(str(path))
            for row in reader:
                quality = [_number(row.get(m)) for m in models]
                cost = [_number(row.get(m + COST_SUFFIX)) for m in models]
                task = row.get("eval_name") or path.stem
                rows.append((prompt_text(row["prompt"]), task, quality, cost))
    tables = []
    for models, rows in by_models.items():
        tables.append(RoutingTable(
            source="routerbench", models=models,
            prompts=[r[0] for r in rows], tasks=[r[1] for r in rows],
            quality=np.array([r[2] for r in rows], dtype=np.float64).reshape(-1, len(models)),
            cost=np.array([r[3] for r in rows], dtype=np.float64).reshape(-1, len(models)),
            cost_kind=CostKind.MEASURED, files=tuple(files[models])))
    return tables


def prompt_text(raw: str) -> str:
    """The column holds a Python list literal of the conversation's turns."""
    if raw.startswith("[") and raw.endswith("]"):
        try:
            turns = ast.literal_eval(raw)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return raw
        if isinstance(turns, list) and all(isinstance(t, str) for t in turns):
            return "\n\n".join(turns)
    return raw


def _number(value: str | None) -> float:
    if value is None or value.strip() == "":
        return float("nan")
    try:
        return float(value)
    except ValueError:
        return float("nan")
