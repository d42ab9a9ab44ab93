"""Routing data in *long* layout — one record per (prompt, model) — as three sources publish it:

- **RouterBench raw** (``routerbench_raw``, before its ``convert_data.py`` pivots it wide):
  ``sample_id, prompt, eval_name, model_name, performance, model_response, cost``; the cost is
  the USD billed.
- **LLMRouter routing data** (``default_routing_{train,test}_data.{csv,jsonl}``):
  ``task_name, query, ground_truth, metric, model_name, response, input_tokens,
  output_tokens, performance``; no cost, so it is estimated from the candidates' list prices
  and the recorded token counts.
- **LLMRouter converted** (``data_convert.py``'s output, a JSON list): ``query, source,
  llm_name_list, cost_list, perf_list`` per prompt, and the baselines' ``query, candidates:
  [{candidate_name, cost, performance}]``.

Each is turned into :class:`Observation` s and :func:`pivot` ed into one table: repeated
observations of a prompt and model are averaged, a model never asked a prompt stays NaN.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyroute.autorouter.costs import Price, estimate_cost, estimate_tokens, list_price
from polyroute.autorouter.readers.routerbench import prompt_text
from polyroute.autorouter.records import CostKind, RoutingTable


@dataclass(frozen=True, slots=True)
class Observation:
    prompt: str
    task: str
    model: str
    quality: float
    """0..1, or NaN when the source left it empty."""
    cost: float | None = None
    """USD the source measured; None: estimate it from prices and tokens."""
    input_tokens: int | None = None
    output_tokens: int | None = None


def is_routerbench_raw_record(record: Any) -> bool:
    return (isinstance(record, Mapping) and _text(record.get("prompt"))
            and _text(record.get("model_name")) and "performance" in record
            and "eval_name" in record)


def is_llmrouter_routing_record(record: Any) -> bool:
    return (isinstance(record, Mapping) and _text(record.get("query"))
            and _text(record.get("model_name")) and "performance" in record)


def is_llmrouter_converted_record(record: Any) -> bool:
    return (isinstance(record, Mapping) and _text(record.get("query"))
            and isinstance(record.get("llm_name_list"), list)
            and isinstance(record.get("perf_list"), list))


def is_llmrouter_candidates_record(record: Any) -> bool:
    return (isinstance(record, Mapping) and _text(record.get("query"))
            and isinstance(record.get("candidates"), list) and bool(record["candidates"])
            and isinstance(record["candidates"][0], Mapping)
            and "candidate_name" in record["candidates"][0])


def routerbench_raw(records: Iterable[Mapping[str, Any]]) -> Iterable[Observation]:
    for r in records:
        yield Observation(prompt=_prompt(r["prompt"]), task=str(r.get("eval_name") or "unknown"),
                          model=str(r["model_name"]), quality=unit_score(r.get("performance")),
                          cost=_number(r.get("cost")))


def llmrouter_routing(records: Iterable[Mapping[str, Any]]) -> Iterable[Observation]:
    for r in records:
        yield Observation(prompt=str(r["query"]), task=str(r.get("task_name") or "unknown"),
                          model=str(r["model_name"]), quality=unit_score(r.get("performance")),
                          cost=_number(r.get("cost")),
                          input_tokens=_count(r.get("input_tokens")),
                          output_tokens=_count(r.get("output_tokens")))


def llmrouter_converted(records: Iterable[Mapping[str, Any]]) -> Iterable[Observation]:
    for r in records:
        names, perfs = r["llm_name_list"], r["perf_list"]
        listed = r.get("cost_list")
        costs: list[Any] = listed if isinstance(listed, list) else []
        for j, (name, perf) in enumerate(zip(names, perfs, strict=False)):
            yield Observation(prompt=str(r["query"]), task=str(r.get("source") or "unknown"),
                              model=str(name), quality=unit_score(perf),
                              cost=_number(costs[j]) if j < len(costs) else None)


def llmrouter_candidates(records: Iterable[Mapping[str, Any]]) -> Iterable[Observation]:
    for r in records:
        for c in r["candidates"]:
            if isinstance(c, Mapping) and _text(c.get("candidate_name")):
                yield Observation(prompt=str(r["query"]), task=str(r.get("task") or "unknown"),
                                  model=str(c["candidate_name"]),
                                  quality=unit_score(c.get("performance")),
                                  cost=_number(c.get("cost")))


def pivot(source: str, observations: Iterable[Observation], files: Iterable[str],
          prices: Mapping[str, Price] | None = None) -> list[RoutingTable]:
    """One table of every prompt × every model observed. The cost is the measured one where
    every observation had one, else list price × tokens (the prompt's estimated tokens when
    the source did not count them)."""
    prices = prices or {}
    sums: dict[tuple[str, str], list[float]] = {}  # (prompt, model) -> [quality, cost, n, nq]
    tasks: dict[str, str] = {}
    models: dict[str, None] = {}
    measured = True
    for o in observations:
        cost = o.cost
        if cost is None:
            measured = False
            price = prices.get(o.model) or list_price(o.model)
            tokens = o.input_tokens if o.input_tokens is not None else estimate_tokens(o.prompt)
            cost = (float("nan") if price is None else
                    estimate_cost(price, tokens, o.output_tokens) if o.output_tokens is not None
                    else estimate_cost(price, tokens))
        acc = sums.setdefault((o.prompt, o.model), [0.0, 0.0, 0.0, 0.0])
        if not np.isnan(o.quality):
            acc[0] += o.quality
            acc[3] += 1
        acc[1] += cost
        acc[2] += 1
        tasks.setdefault(o.prompt, o.task)
        models.setdefault(o.model)
    if not sums:
        return []
    names = tuple(sorted(models))
    column = {m: j for j, m in enumerate(names)}
    row = {p: i for i, p in enumerate(tasks)}
    quality = np.full((len(row), len(names)), np.nan)
    cost_matrix = np.full((len(row), len(names)), np.nan)
    for (prompt, model), (q, c, n, nq) in sums.items():
        if nq:
            quality[row[prompt], column[model]] = q / nq
        cost_matrix[row[prompt], column[model]] = c / n
    return [RoutingTable(source=source, models=names, prompts=list(tasks),
                         tasks=list(tasks.values()), quality=quality, cost=cost_matrix,
                         cost_kind=CostKind.MEASURED if measured else CostKind.ESTIMATED,
                         files=tuple(files))]


def unit_score(value: Any) -> float:
    """A 0..1 score from a bool, a number or its text ("True", "0.5"); NaN when empty."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "false"):
            return float(text == "true")
        try:
            value = float(text)
        except ValueError:
            return float("nan")
    if isinstance(value, int | float) and np.isfinite(value):
        return min(1.0, max(0.0, float(value)))
    return float("nan")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) and number >= 0 else None


def _count(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _prompt(raw: Any) -> str:
    return prompt_text(str(raw))  # RouterBench's wide and long files hold the same prompts
