"""LLMRouter files: a score list ``[{question, scores: {model: 0..1}}]``, optionally the query
metadata JSONL (``task_name``, ``query``: joined on the question text to name each prompt's
task) and the candidates JSON (list prices per 1M tokens). Costs are estimated from those prices
(or :data:`~polyroute.autorouter.costs.LIST_PRICES`) and token counts: the data measured none."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polyroute.autorouter.costs import Price, estimate_cost, estimate_tokens, list_price
from polyroute.autorouter.records import CostKind, RoutingTable


def is_score_list(data: Any) -> bool:
    return (isinstance(data, list) and bool(data) and isinstance(data[0], dict)
            and isinstance(data[0].get("question"), str)
            and isinstance(data[0].get("scores"), dict))


def is_candidate_prices(data: Any) -> bool:
    return (isinstance(data, dict) and bool(data)
            and all(isinstance(v, dict) and "input_price" in v and "output_price" in v
                    for v in data.values()))


def is_query_record(record: Any) -> bool:
    return isinstance(record, dict) and isinstance(record.get("query"), str) \
        and isinstance(record.get("task_name"), str)


def read_candidate_prices(data: Mapping[str, Any]) -> dict[str, Price]:
    return {name: Price(float(v["input_price"]), float(v["output_price"]))
            for name, v in data.items()}


def read_llmrouter(score_lists: Sequence[tuple[Path, list[dict[str, Any]]]],
                   tasks: Mapping[str, str], prices: Mapping[str, Price]) -> list[RoutingTable]:
    by_models: dict[tuple[str, ...], list[tuple[str, str, list[float]]]] = {}
    files: dict[tuple[str, ...], list[str]] = {}
    for path, records in score_lists:
        for record in records:
            scores = record["scores"]
            models = tuple(sorted(scores))
            quality = [_score(scores[m]) for m in models]
            question = record["question"]
            by_models.setdefault(models, []).append(
                (question, tasks.get(question, "unknown"), quality))
            if str(path) not in files.setdefault(models, []):
                files[models].append(str(path))
    tables = []
    for models, rows in by_models.items():
        model_prices = [prices.get(m) or list_price(m) for m in models]
        cost = np.full((len(rows), len(models)), np.nan)
        for i, (prompt, _, _) in enumerate(rows):
            tokens = estimate_tokens(prompt)
            for j, price in enumerate(model_prices):
                if price is not None:
                    cost[i, j] = estimate_cost(price, tokens)
        tables.append(RoutingTable(
            source="llmrouter", models=models,
            prompts=[r[0] for r in rows], tasks=[r[1] for r in rows],
            quality=np.array([r[2] for r in rows], dtype=np.float64).reshape(-1, len(models)),
            cost=cost, cost_kind=CostKind.ESTIMATED, files=tuple(files[models])))
    return tables


def _score(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return min(1.0, max(0.0, float(value)))
    return float("nan")
