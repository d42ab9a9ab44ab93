"""RouteLLM response CSVs: a ``prompt`` column and one True/False column per model, as in
``mmlu/responses/mmlu_<subject>.csv``; ``gsm8k/gsm8k_responses.csv`` also carries each model's
answer text in a ``<model>_response`` column, which is skipped. The task is the subject or
benchmark, from the file name (``mmlu_anatomy`` → anatomy, ``gsm8k_responses`` → gsm8k). A
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


RESPONSE_SUFFIX = "_response"


def is_routellm_header(header: Sequence[str], first_row: Sequence[str]) -> bool:
    if not header or header[0] != "prompt" or len(first_row) != len(header):
        return False
    models = _model_columns(header)
    return len(models) >= 2 and all(
        first_row[j].strip().lower() in _TRUE | _FALSE for j in models)


def _model_columns(header: Sequence[str]) -> list[int]:
    """The True/False columns: every one after ``prompt`` but a model's answer text."""
    names = set(header)
    return [j for j, name in enumerate(header) if j > 0 and not (
        name.endswith(RESPONSE_SUFFIX) and name[:-len(RESPONSE_SUFFIX)] in names)]


def task_of(path: Path) -> str:
    return path.stem.removeprefix("mmlu_").removesuffix("_responses")


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
        subject = task_of(path)
        with open_csv(path) as handle:
            reader = csv.reader(handle)
            header = next(reader)
            columns = _model_columns(header)
            models = tuple(header[j] for j in columns)
            rows = by_models.setdefault(models, [])
            files.setdefault(models, []).append(str(path))
            for row in reader:
                if len(row) != len(header) or row[0] in drop:
                    continue
                rows.append((row[0], subject, [_truth(row[j]) for j in columns]))
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
