"""polyroute's own format for logged traffic with quality labels, one JSON object per line::

    {"prompt": "…", "model": "my-small", "score": 1.0, "cost": 0.00012, "task": "support"}

``prompt`` is the request's text (see :func:`polyroute.autorouter.prompt_text`), ``model`` the
configured model that answered, ``score`` the quality label in 0..1 (a grader's verdict, a
thumbs up, a test that passed). ``cost`` (USD) and ``task`` are optional; a missing cost is
estimated from :data:`~polyroute.autorouter.costs.LIST_PRICES` when the model is listed there.
Lines for the same prompt and model are averaged; models never asked a prompt stay NaN."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polyroute.autorouter.costs import estimate_cost, estimate_tokens, list_price
from polyroute.autorouter.records import CostKind, RoutingTable


def is_traffic_record(record: Any) -> bool:
    return (isinstance(record, dict) and isinstance(record.get("prompt"), str)
            and isinstance(record.get("model"), str)
            and isinstance(record.get("score"), int | float))


def read_traffic(paths: Sequence[Path]) -> list[RoutingTable]:
    sums: dict[tuple[str, str], list[float]] = {}  # (prompt, model) -> [score, cost, count]
    tasks: dict[str, str] = {}
    models: dict[str, None] = {}
    for path in paths:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                record = json.loads(line)
                if not is_traffic_record(record):
                    raise ValueError(f"{path}:{number}: expected prompt, model and score")
                prompt, model = record["prompt"], record["model"]
                cost = record.get("cost")
                if not isinstance(cost, int | float):
                    price = list_price(model)
                    cost = (estimate_cost(price, estimate_tokens(prompt)) if price
                            else float("nan"))
                acc = sums.setdefault((prompt, model), [0.0, 0.0, 0.0])
                acc[0] += min(1.0, max(0.0, float(record["score"])))
                acc[1] += float(cost)
                acc[2] += 1
                tasks.setdefault(prompt, str(record.get("task") or "traffic"))
                models.setdefault(model)
    if not sums:
        return []
    names = tuple(models)
    column = {m: j for j, m in enumerate(names)}
    row = {p: i for i, p in enumerate(tasks)}
    quality = np.full((len(row), len(names)), np.nan)
    cost_matrix = np.full((len(row), len(names)), np.nan)
    for (prompt, model), (score, cost, count) in sums.items():
        quality[row[prompt], column[model]] = score / count
        cost_matrix[row[prompt], column[model]] = cost / count
    return [RoutingTable(source="traffic", models=names, prompts=list(tasks),
                         tasks=list(tasks.values()), quality=quality, cost=cost_matrix,
                         cost_kind=CostKind.MEASURED, files=tuple(str(p) for p in paths))]
