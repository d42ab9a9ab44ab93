"""RouteLLM response CSVs (e.g. ``mmlu/responses/mmlu_<subject>.csv``): a ``prompt`` column and
one True/False column per model. The task is the subject, from the file name. A
``contaminated_prompts.jsonl`` anywhere in the directory lists prompts RouteLLM drops before
scoring; they are dropped here too."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from polyroute.autorouter.costs import estimate_cost, estimate_tokens, list_price
from polyroute.autorouter.readers.csv_text import open_csv
from polyroute.autorouter.records import CostKind, RoutingTable

_TRUE = {"true", "1", "1.0", "yes"}
_FALSE = {"false", "0", "0.0", "no"}


def is_routellm_header(header: Sequence[str], first_row: Sequence[str]) -> bool:
    if not header or header[0] != "prompt" or len(header) < 3 or len(first_row) != len(header):
        return False
    return all(v.strip().lower() in _TRUE | _FALSE for v in first_row[1:])


def read_contaminated(path: Path) -> set[str]:
    prompts = set()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                if isinstance(record, dict) and isinstance(record.get("eval_prompt"), str):
                    prompts.add(record["eval_prompt"])
    return prompts


def read_routellm(paths: Sequence[Path], contaminated: Iterable[str] = ()) -> list[RoutingTable]:
    drop = set(contaminated)
    by_models: dict[tuple[str, ...], list[tuple[str, str, list[float]]]] = {}
    files: dict[tuple[str, ...], list[str]] = {}
    for path in paths:
        subject = path.stem.removeprefix("mmlu_")
        with open_csv(path) as handle:
            reader = csv.reader(handle)
            header = next(reader)
            models = tuple(header[1:])
            rows = by_models.setdefault(models, [])
            files.setdefault(models, []).append(str(path))
            for row in reader:
                if len(row) != len(header) or row[0] in drop:
                    continue
                rows.append((row[0], subject, [_truth(v) for v in row[1:]]))
    tables = []
    for models, rows in by_models.items():
        prices = [list_price(m) for m in models]
        cost = np.full((len(rows), len(models)), np.nan)
        for i, (prompt, _, _) in enumerate(rows):
            tokens = estimate_tokens(prompt)
            for j, price in enumerate(prices):
                if price is not None:
                    cost[i, j] = estimate_cost(price, tokens)
        tables.append(RoutingTable(
            source="routellm", models=models,
            prompts=[r[0] for r in rows], tasks=[r[1] for r in rows],
            quality=np.array([r[2] for r in rows], dtype=np.float64).reshape(-1, len(models)),
            cost=cost, cost_kind=CostKind.ESTIMATED, files=tuple(files[models])))
    return tables


def _truth(value: str) -> float:
    text = value.strip().lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    return float("nan")
