"""Sniff every file under a directory and read the routing data it holds, whatever the names.

Each file is classified by its content, not its name, so a held-out directory laid out
differently still loads: CSV by header (RouterBench has ``<model>|total_cost`` columns, RouteLLM
a ``prompt`` column then True/False columns, the long layouts ``model_name`` and
``performance``), JSON and JSONL by their records' keys. The layouts, per source:

- RouterBench: the wide CSV (``routerbench.py``) and the raw long layout (``long.py``). Its
  ``.pkl`` releases are Python pickles, which run code when loaded: they are named in a
  warning and skipped, never opened (convert one to CSV with pandas where you trust it).
- RouteLLM: response CSVs with or without answer columns (``routellm.py``), contaminated
  prompts, MT-Bench questions and judgements (``mtbench.py``).
- LLMRouter: score lists, query metadata, candidate prices (``llmrouter.py``), the long
  routing data and the converted and candidates JSON (``long.py``).
- polyroute's own traffic JSONL (``traffic.py``).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from polyroute.autorouter.costs import Price
from polyroute.autorouter.readers.csv_text import open_csv
from polyroute.autorouter.readers.llmrouter import (
    is_candidate_prices,
    is_query_record,
    is_score_list,
    read_candidate_prices,
    read_llmrouter,
)
from polyroute.autorouter.readers.long import (
    Observation,
    is_llmrouter_candidates_record,
    is_llmrouter_converted_record,
    is_llmrouter_routing_record,
    is_routerbench_raw_record,
    llmrouter_candidates,
    llmrouter_converted,
    llmrouter_routing,
    pivot,
    routerbench_raw,
)
from polyroute.autorouter.readers.mtbench import (
    is_judgement_record,
    is_question_record,
)
from polyroute.autorouter.readers.mtbench import observations as mtbench_observations
from polyroute.autorouter.readers.routellm import (
    is_routellm_header,
    read_contaminated,
    read_routellm,
)
from polyroute.autorouter.readers.routerbench import is_routerbench_header, read_routerbench
from polyroute.autorouter.readers.traffic import is_traffic_record, read_traffic
from polyroute.autorouter.records import RoutingTable

log = logging.getLogger("polyroute.autorouter")


class FileKind(StrEnum):
    ROUTERBENCH = "routerbench-csv"
    ROUTELLM = "routellm-csv"
    ROUTELLM_CONTAMINATED = "routellm-contaminated-jsonl"
    LLMROUTER_SCORES = "llmrouter-scores-json"
    LLMROUTER_QUERIES = "llmrouter-queries-jsonl"
    LLMROUTER_PRICES = "llmrouter-candidates-json"
    TRAFFIC = "traffic-jsonl"
    ROUTERBENCH_LONG = "routerbench-raw"
    LLMROUTER_ROUTING = "llmrouter-routing"
    LLMROUTER_CONVERTED = "llmrouter-converted-json"
    LLMROUTER_CANDIDATES = "llmrouter-candidates-list-json"
    MTBENCH_QUESTIONS = "mt-bench-questions-jsonl"
    MTBENCH_JUDGEMENTS = "mt-bench-judgements-jsonl"
    PICKLE = "pickle"
    UNKNOWN = "unknown"


_LONG_READERS: dict[FileKind, tuple[str, Callable[[Iterable[Any]], Iterable[Observation]]]] = {
    FileKind.ROUTERBENCH_LONG: ("routerbench", routerbench_raw),
    FileKind.LLMROUTER_ROUTING: ("llmrouter", llmrouter_routing),
    FileKind.LLMROUTER_CONVERTED: ("llmrouter", llmrouter_converted),
    FileKind.LLMROUTER_CANDIDATES: ("llmrouter", llmrouter_candidates),
}
"""Long layouts: (source, reader of its records)."""


def sniff(path: Path) -> FileKind:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return _sniff_csv(path)
        if suffix == ".jsonl":
            return _sniff_jsonl(_first_jsonl_record(path))
        if suffix == ".json":
            return _sniff_json(path)
        if suffix in (".pkl", ".pickle"):
            return FileKind.PICKLE
    except (OSError, UnicodeDecodeError, ValueError, csv.Error):
        return FileKind.UNKNOWN
    return FileKind.UNKNOWN


def load_routing_data(*roots: Path | str) -> list[RoutingTable]:
    """Every routing table under the given files or directories, incomplete rows included."""
    files: dict[FileKind, list[Path]] = {}
    for path in _walk(Path(r) for r in roots):
        kind = sniff(path)
        if kind is not FileKind.UNKNOWN:
            files.setdefault(kind, []).append(path)
    for path in files.get(FileKind.PICKLE, []):
        log.warning("%s: skipped: a pickle runs code when it is loaded, so polyroute never "
                    "opens one; where you trust it, convert it with pandas: "
                    "pd.read_pickle(path).to_csv(path_to_csv, index=False)", path)
    contaminated: set[str] = set()
    for path in files.get(FileKind.ROUTELLM_CONTAMINATED, []):
        contaminated |= read_contaminated(path)
    prices: dict[str, Price] = {}
    for path in files.get(FileKind.LLMROUTER_PRICES, []):
        prices.update(read_candidate_prices(_load_json(path)))
    tables: list[RoutingTable] = []
    if FileKind.ROUTERBENCH in files:
        tables += read_routerbench(files[FileKind.ROUTERBENCH])
    if FileKind.ROUTELLM in files:
        tables += read_routellm(files[FileKind.ROUTELLM], contaminated)
    if FileKind.LLMROUTER_SCORES in files:
        tables += _read_llmrouter_family(files, prices)
    if FileKind.TRAFFIC in files:
        tables += read_traffic(files[FileKind.TRAFFIC])
    for kind, (source, reader) in _LONG_READERS.items():
        for path in files.get(kind, []):
            tables += pivot(source, reader(_records(path)), [str(path)], prices)
    if FileKind.MTBENCH_JUDGEMENTS in files:
        tables += _read_mtbench(files, contaminated)
    return [t for t in (_drop_unpriced_models(t) for t in tables) if len(t) and t.models]


def _read_mtbench(files: dict[FileKind, list[Path]],
                  contaminated: set[str]) -> list[RoutingTable]:
    questions = {q["question_id"]: q for path in files.get(FileKind.MTBENCH_QUESTIONS, [])
                 for q in _jsonl(path) if is_question_record(q)}
    paths = files[FileKind.MTBENCH_JUDGEMENTS]
    judgements = (j for path in paths for j in _jsonl(path) if is_judgement_record(j))
    return pivot("routellm-mt-bench",
                 mtbench_observations(judgements, questions, contaminated),
                 [str(p) for p in paths])


def _read_llmrouter_family(files: dict[FileKind, list[Path]],
                           prices: dict[str, Price]) -> list[RoutingTable]:
    tasks: dict[str, str] = {}
    for path in files.get(FileKind.LLMROUTER_QUERIES, []):
        for record in _jsonl(path):
            if is_query_record(record):
                tasks.setdefault(record["query"], record["task_name"])
    scores = [(p, _load_json(p)) for p in files[FileKind.LLMROUTER_SCORES]]
    return read_llmrouter(scores, tasks, prices)


def _drop_unpriced_models(table: RoutingTable) -> RoutingTable:
    priced: npt.NDArray[np.bool_] = np.asarray(np.isfinite(table.cost).any(axis=0))
    if priced.all():
        return table
    dropped = [m for j, m in enumerate(table.models) if not priced[j]]
    log.warning("%s: no cost and no list price for %s; leaving them out", table.source,
                ", ".join(dropped))
    keep = np.flatnonzero(priced)
    return RoutingTable(
        source=table.source, models=tuple(table.models[j] for j in keep), prompts=table.prompts,
        tasks=table.tasks, quality=table.quality[:, keep], cost=table.cost[:, keep],
        cost_kind=table.cost_kind, files=table.files)


def _walk(roots: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found += sorted(p for p in root.rglob("*") if p.is_file())
        else:
            raise FileNotFoundError(f"no such file or directory: {root}")
    return found


def _sniff_csv(path: Path) -> FileKind:
    with open_csv(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        if is_routerbench_header(header):
            return FileKind.ROUTERBENCH
        first = next(reader, [])
    if is_routellm_header(header, first):
        return FileKind.ROUTELLM
    record = dict(zip(header, first, strict=False))
    return _sniff_long(record) or FileKind.UNKNOWN


def _sniff_long(record: Any) -> FileKind | None:
    if is_routerbench_raw_record(record):
        return FileKind.ROUTERBENCH_LONG
    if is_llmrouter_routing_record(record):
        return FileKind.LLMROUTER_ROUTING
    if is_llmrouter_converted_record(record):
        return FileKind.LLMROUTER_CONVERTED
    if is_llmrouter_candidates_record(record):
        return FileKind.LLMROUTER_CANDIDATES
    return None


def _sniff_jsonl(record: Any) -> FileKind:
    if is_traffic_record(record):
        return FileKind.TRAFFIC
    if is_judgement_record(record):
        return FileKind.MTBENCH_JUDGEMENTS
    if is_question_record(record):
        return FileKind.MTBENCH_QUESTIONS
    long = _sniff_long(record)
    if long is not None:
        return long
    if is_query_record(record):
        return FileKind.LLMROUTER_QUERIES
    if isinstance(record, dict) and "eval_prompt" in record:
        return FileKind.ROUTELLM_CONTAMINATED
    return FileKind.UNKNOWN


def _sniff_json(path: Path) -> FileKind:
    data = _load_json(path)
    if is_score_list(data):
        return FileKind.LLMROUTER_SCORES
    if is_candidate_prices(data):
        return FileKind.LLMROUTER_PRICES
    if isinstance(data, list) and data:
        return _sniff_jsonl(data[0])  # a JSON array of traffic or query records
    return FileKind.UNKNOWN


def _first_jsonl_record(path: Path) -> Any:
    for record in _jsonl(path):
        return record
    return None


def _records(path: Path) -> Iterable[Any]:
    """The records of a long-layout file: CSV rows, JSONL lines or a JSON array."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open_csv(path) as handle:
            yield from csv.DictReader(handle)
    elif suffix == ".json":
        yield from _load_json(path)
    else:
        yield from _jsonl(path)


def _jsonl(path: Path) -> Iterable[Any]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _load_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)
