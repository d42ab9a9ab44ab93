"""Every layout the three public routing-data sources publish, each read from a small file in
that exact layout (issue 17, item 3). The layouts were learnt from the sources' repositories:
lm-sys/RouteLLM (routellm/evals/{gsm8k,mt_bench}, benchmarks/mt-bench), withmartian/routerbench
(convert_data.py, convertors/common.py: the raw long layout it pivots) and ulab-uiuc/LLMRouter
(llmrouter/utils/data_convert.py, the baselines' README). None of their data is used here or in
the shipped artifact: the rows below are written by hand."""

from __future__ import annotations

import csv
import json
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest

from polyroute.autorouter.cli import main as cli_main
from polyroute.autorouter.costs import estimate_cost, estimate_tokens, list_price
from polyroute.autorouter.readers import FileKind, load_routing_data, sniff
from polyroute.autorouter.readers.mtbench import first_user_turn
from polyroute.autorouter.records import CostKind

WEAK, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"


def write_jsonl(path: Path, records: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


# -- RouteLLM ------------------------------------------------------------------------------------


def write_gsm8k(root: Path) -> Path:
    """routellm/evals/gsm8k/gsm8k_responses.csv: True/False columns, then each model's answer
    text in a ``<model>_response`` column (multi-line, quoted)."""
    path = root / "gsm8k" / "gsm8k_responses.csv"
    path.parent.mkdir(parents=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["prompt", WEAK, STRONG, f"{WEAK}_response", f"{STRONG}_response"])
        w.writerow(["Janet has 16 eggs and eats 3. How many are left?", "True", "True",
                    " She has 16 - 3 = 13 left.\n#### 13", "16 - 3 = 13.\n#### 13"])
        w.writerow(["A robe takes 2 bolts of blue and half that of white. How many?", "False",
                    "True", " 2 + 1/2 = 2.5, so 3.\n#### 3\n\n", "2 + 1 = 3 bolts."])
        w.writerow(["Copied from the training set", "True", "False", "x", "y"])
    write_jsonl(root / "gsm8k" / "contaminated_prompts.jsonl", [
        {"train_prompt": "Copied from the training set.", "eval_prompt":
         "Copied from the training set", "train_index": 5, "eval_index": 2,
         "similarity": 0.99}])
    return path


def test_routellm_csv_with_answer_columns(tmp_path: Path) -> None:
    path = write_gsm8k(tmp_path)
    assert sniff(path) is FileKind.ROUTELLM
    [table] = load_routing_data(tmp_path)
    assert table.source == "routellm"
    assert table.models == (WEAK, STRONG)  # the _response columns are not models
    assert table.tasks == ["gsm8k", "gsm8k"]  # the contaminated prompt is dropped
    assert table.quality.tolist() == [[1.0, 1.0], [0.0, 1.0]]
    price = list_price(STRONG)
    assert price is not None
    assert table.cost[1, 1] == pytest.approx(
        estimate_cost(price, estimate_tokens(table.prompts[1])))


def test_router_eval_reads_the_gsm8k_layout(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Before, `router eval` said "no routing data found" for this file."""
    write_gsm8k(tmp_path / "data")
    cli_main(["eval", "--data", str(tmp_path / "data"), "-q", "--resamples", "5"])
    captured = capsys.readouterr()
    assert "no routing data found" not in captured.out + captured.err


def mtbench_judgement(qid: int, model: str, turn: int, score: float,
                      question: str) -> dict[str, object]:
    """A line of judgements.jsonl / FastChat's gpt-4_single.jsonl, with its judge prompt."""
    if turn == 1:
        judge = ["gpt-4", "single-v1"]
        prompt = ("[Instruction]\nPlease act as an impartial judge ...\n\n[Question]\n"
                  f"{question}\n\n[The Start of Assistant's Answer]\nAn answer.\n"
                  "[The End of Assistant's Answer]")
    else:
        judge = ["gpt-4", "single-v1-multi-turn"]
        prompt = ("<|The Start of Assistant A's Conversation with User|>\n\n### User:\n"
                  f"{question}\n\n### Assistant A:\nAn answer.\n\n### User:\nMore?\n\n"
                  "### Assistant A:\nMore.\n\n<|The End of Assistant A's Conversation with "
                  "User|>")
    return {"question_id": qid, "model": model, "judge": judge, "user_prompt": prompt,
            "judgment": f"Rating: [[{score}]]", "score": score, "turn": turn,
            "tstamp": 1714636116.7}


def test_mt_bench_judgements_joined_to_questions(tmp_path: Path) -> None:
    root = tmp_path / "mt_bench"
    write_jsonl(root / "question.jsonl", [
        {"question_id": 81, "category": "writing", "turns": ["Write a travel blog.", "Redo."]},
        {"question_id": 82, "category": "math", "turns": ["What is 3+4?", "And 3*4?"]},
        {"question_id": 83, "category": "coding", "turns": ["Leaked prompt", "Then?"]}])
    write_jsonl(root / "contaminated_prompts.jsonl", [
        {"train_prompt": "Leaked prompt\n", "eval_prompt": "Leaked prompt"}])
    write_jsonl(root / "judgements.jsonl", [
        mtbench_judgement(81, STRONG, 1, 10, "Write a travel blog."),
        mtbench_judgement(81, STRONG, 2, 8, "Write a travel blog."),
        mtbench_judgement(81, WEAK, 1, 7, "Write a travel blog."),
        mtbench_judgement(81, WEAK, 2, -1, "Write a travel blog."),  # unparsed rating
        mtbench_judgement(82, STRONG, 1, 1, "What is 3+4?"),
        mtbench_judgement(82, WEAK, 1, 9.5, "What is 3+4?"),
        mtbench_judgement(83, STRONG, 1, 10, "Leaked prompt")])
    assert sniff(root / "question.jsonl") is FileKind.MTBENCH_QUESTIONS
    assert sniff(root / "judgements.jsonl") is FileKind.MTBENCH_JUDGEMENTS
    [table] = load_routing_data(root)
    assert table.source == "routellm-mt-bench"
    assert table.models == (STRONG, WEAK)
    assert table.prompts == ["Write a travel blog.", "What is 3+4?"]  # first turns only
    assert table.tasks == ["writing", "math"]
    # (score - 1) / 9, averaged over the judged turns; -1 is no score at all.
    assert table.quality.tolist() == [[pytest.approx(8 / 9), pytest.approx(6 / 9)],
                                      [0.0, pytest.approx(8.5 / 9)]]
    assert table.cost_kind is CostKind.ESTIMATED


def test_mt_bench_judgements_alone_take_the_question_from_the_judge_prompt(
        tmp_path: Path) -> None:
    """RouteLLM's benchmarks/mt-bench/gpt-4_single.jsonl comes without question.jsonl."""
    write_jsonl(tmp_path / "gpt-4_single.jsonl", [
        mtbench_judgement(98, STRONG, 1, 9, "Embody Tony Stark."),
        mtbench_judgement(98, STRONG, 2, 7, "Embody Tony Stark."),
        mtbench_judgement(98, WEAK, 1, 4, "Embody Tony Stark.")])
    [table] = load_routing_data(tmp_path)
    assert table.prompts == ["Embody Tony Stark."]
    assert table.tasks == ["mt-bench"]
    assert table.quality.tolist() == [[pytest.approx(7 / 9), pytest.approx(3 / 9)]]
    math_reference = ("<|The Start of Reference Answer|>\n\n### User:\nRoll two dice?\n\n"
                      "### Reference answer:\n36 outcomes.")
    assert first_user_turn(math_reference) == "Roll two dice?"
    assert first_user_turn("no quoted question") is None


# -- RouterBench ---------------------------------------------------------------------------------


RAW_COLUMNS = ["sample_id", "prompt", "eval_name", "model_name", "performance",
               "model_response", "cost"]
RAW_ROWS = [
    ["mmlu-1", "['What is 2+2?']", "mmlu", "gpt-4-1106-preview", 1.0, "4", 0.0021],
    ["mmlu-1", "['What is 2+2?']", "mmlu", "mistral-7b-chat", 0.0, "5", 0.00004],
    ["gsm-7", "['Add 1 and 1.', 'Then double it.']", "gsm8k", "gpt-4-1106-preview", 1.0,
     "4", 0.0030],
    ["gsm-7", "['Add 1 and 1.', 'Then double it.']", "gsm8k", "mistral-7b-chat", "", "",
     0.00005],
]


def check_routerbench_raw(tables: list) -> None:  # type: ignore[type-arg]
    [table] = tables
    assert table.source == "routerbench"
    assert table.models == ("gpt-4-1106-preview", "mistral-7b-chat")
    assert table.prompts == ["What is 2+2?", "Add 1 and 1.\n\nThen double it."]
    assert table.tasks == ["mmlu", "gsm8k"]
    assert table.quality[0].tolist() == [1.0, 0.0]
    assert np.isnan(table.quality[1, 1])  # an empty score stays missing
    assert table.cost.tolist() == [[0.0021, 0.00004], [0.0030, 0.00005]]
    assert table.cost_kind is CostKind.MEASURED


def test_routerbench_raw_long_layout_csv(tmp_path: Path) -> None:
    path = tmp_path / "routerbench_raw.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(RAW_COLUMNS)
        w.writerows(RAW_ROWS)
    assert sniff(path) is FileKind.ROUTERBENCH_LONG
    check_routerbench_raw(load_routing_data(tmp_path))


def test_routerbench_raw_long_layout_jsonl(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "routerbench_raw.jsonl",
                [dict(zip(RAW_COLUMNS, row, strict=True)) for row in RAW_ROWS])
    check_routerbench_raw(load_routing_data(tmp_path))


class _Trap:
    """Unpickling this would create a file: proof that a pickle was opened."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def test_routerbench_pickles_are_never_opened(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "opened"
    (tmp_path / "routerbench_0shot.pkl").write_bytes(pickle.dumps(_Trap(str(marker))))
    write_jsonl(tmp_path / "raw.jsonl",
                [dict(zip(RAW_COLUMNS, row, strict=True)) for row in RAW_ROWS])
    with caplog.at_level(logging.WARNING, logger="polyroute.autorouter"):
        tables = load_routing_data(tmp_path)
    assert not marker.exists()
    assert "routerbench_0shot.pkl: skipped: a pickle runs code" in caplog.text
    check_routerbench_raw(tables)


# -- LLMRouter -----------------------------------------------------------------------------------


def write_candidates(root: Path) -> None:
    """data/example_data/llm_candidates/default_llm.json: list prices per 1M tokens."""
    (root / "default_llm.json").write_text(json.dumps({
        "qwen2.5-7b-instruct": {"size": "7B", "feature": "…", "input_price": 0.2,
                                "output_price": 0.2, "model": "qwen/qwen2.5-7b-instruct"},
        "llama-3.1-70b-instruct": {"size": "70B", "feature": "…", "input_price": 0.9,
                                   "output_price": 0.9,
                                   "model": "meta/llama-3.1-70b-instruct"}}))


ROUTING_COLUMNS = ["task_name", "query", "ground_truth", "metric", "model_name", "response",
                   "input_tokens", "output_tokens", "performance"]
ROUTING_ROWS = [
    ["natural_qa", "who wrote hamlet", "Shakespeare", "f1_score", "qwen2.5-7b-instruct",
     "Shakespeare", 100, 20, 1.0],
    ["natural_qa", "who wrote hamlet", "Shakespeare", "f1_score", "llama-3.1-70b-instruct",
     "William Shakespeare", 100, 40, 0.8],
    ["gsm8k", "what is 7*6", "42", "GSM8K", "qwen2.5-7b-instruct", "41", 50, 10, 0.0],
    ["gsm8k", "what is 7*6", "42", "GSM8K", "llama-3.1-70b-instruct", "42", 50, 10, 1.0],
]


def check_llmrouter_routing(tables: list) -> None:  # type: ignore[type-arg]
    [table] = tables
    assert table.source == "llmrouter"
    assert table.models == ("llama-3.1-70b-instruct", "qwen2.5-7b-instruct")
    assert table.prompts == ["who wrote hamlet", "what is 7*6"]
    assert table.tasks == ["natural_qa", "gsm8k"]
    assert table.quality.tolist() == [[0.8, 1.0], [1.0, 0.0]]
    # list price × the recorded token counts, not an estimate from the text
    assert table.cost[0].tolist() == pytest.approx([(100 + 40) * 0.9 / 1e6,
                                                    (100 + 20) * 0.2 / 1e6])
    assert table.cost_kind is CostKind.ESTIMATED


def test_llmrouter_routing_data_csv(tmp_path: Path) -> None:
    write_candidates(tmp_path)
    path = tmp_path / "default_routing_train_data.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(ROUTING_COLUMNS)
        w.writerows(ROUTING_ROWS)
    assert sniff(path) is FileKind.LLMROUTER_ROUTING
    check_llmrouter_routing(load_routing_data(tmp_path))


def test_llmrouter_routing_data_jsonl(tmp_path: Path) -> None:
    write_candidates(tmp_path)
    write_jsonl(tmp_path / "default_routing_train_data.jsonl",
                [dict(zip(ROUTING_COLUMNS, row, strict=True)) for row in ROUTING_ROWS])
    assert sniff(tmp_path / "default_routing_train_data.jsonl") is FileKind.LLMROUTER_ROUTING
    check_llmrouter_routing(load_routing_data(tmp_path))


def test_llmrouter_converted_and_candidates_lists(tmp_path: Path) -> None:
    (tmp_path / "router_train_data_nq.json").write_text(json.dumps([
        {"q_id": 0, "query": "capital of france", "gt": ["Paris"], "source": "natural_qa",
         "llm_name_list": ["qwen/qwen2.5-7b-instruct", "meta/llama-3.1-70b-instruct"],
         "response_list": ["Paris", "Paris"], "cost_list": [0.00002, 0.0001],
         "perf_list": [1.0, 1.0], "best_llm": "qwen/qwen2.5-7b-instruct"}]))
    (tmp_path / "benchmark.json").write_text(json.dumps([
        {"query": "2+2", "candidates": [
            {"candidate_name": "small", "cost": 0.01, "performance": 0.85, "score": 0.8},
            {"candidate_name": "large", "cost": 0.02, "performance": 0.9, "score": 0.85}],
         "ground_truth": "small"}]))
    assert sniff(tmp_path / "router_train_data_nq.json") is FileKind.LLMROUTER_CONVERTED
    assert sniff(tmp_path / "benchmark.json") is FileKind.LLMROUTER_CANDIDATES
    tables = {t.prompts[0]: t for t in load_routing_data(tmp_path)}
    converted, candidates = tables["capital of france"], tables["2+2"]
    assert converted.prompts == ["capital of france"]
    assert converted.tasks == ["natural_qa"]
    assert converted.models == ("meta/llama-3.1-70b-instruct", "qwen/qwen2.5-7b-instruct")
    assert converted.cost.tolist() == [[0.0001, 0.00002]]
    assert converted.cost_kind is CostKind.MEASURED
    assert candidates.models == ("large", "small")
    assert candidates.quality.tolist() == [[0.9, 0.85]]
    assert candidates.cost.tolist() == [[0.02, 0.01]]


def test_the_shipped_data_reads_as_before() -> None:
    """The layouts added here take nothing away from ../shared/data/routing's."""
    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing"
    if not root.is_dir():
        pytest.skip(f"{root} is not on this machine")
    sizes = {t.source: (len(t), len(t.models)) for t in load_routing_data(root)}
    assert sizes == {"routerbench": (2225, 11), "routellm": (14037, 2),
                     "llmrouter": (5608, 9)}
