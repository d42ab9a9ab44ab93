"""The auto-router: readers, metrics on hand-computed cases, deterministic training, the
decision knob on the shipped artifact, and the CLI end to end on tiny fixture files."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from polyroute.autorouter import (
    AutoRouter,
    Candidate,
    Policy,
    UnknownProfile,
    add_cli,
    prompt_text,
)
from polyroute.autorouter.artifact import RouterArtifact
from polyroute.autorouter.cli import main as cli_main
from polyroute.autorouter.convergence import main as convergence_main
from polyroute.autorouter.costs import estimate_cost, estimate_tokens, list_price
from polyroute.autorouter.holdout import cross_validated_iterates, cross_validated_predictions
from polyroute.autorouter.metrics import (
    aiq,
    apgr,
    cost_at_quality,
    cpt,
    oracle_choice,
    quality_at_cost,
    upper_hull,
)
from polyroute.autorouter.predictor import QualityPredictor
from polyroute.autorouter.readers import FileKind, load_routing_data, sniff
from polyroute.autorouter.router import rank
from polyroute.autorouter.training import (
    TrainingConfig,
    train_router,
    train_router_iterates,
)
from polyroute.model.chat import ContentPart, Message
from polyroute.model.tools import ImageURL

# --- fixture files, one per format --------------------------------------------------------


def write_routerbench(path: Path, rows: list[tuple[str, str, list[float | str], list[float]]],
                      models: tuple[str, ...] = ("org/strong", "weak")) -> None:
    header = ["", "sample_id", "prompt", "eval_name", *models,
              *(f"{m}|model_response" for m in models), *(f"{m}|total_cost" for m in models),
              "oracle_model_to_route_to"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i, (prompt, task, scores, costs) in enumerate(rows):
            writer.writerow([i, f"{task}.{i}", repr([prompt]), task, *scores,
                             *(["answer"] * len(models)), *costs, models[0]])


def write_routellm(root: Path) -> None:
    responses = root / "mmlu" / "responses"
    responses.mkdir(parents=True)
    for subject, rows in {
        "anatomy": [("Which bone is the longest?\nA. femur\nAnswer:", "True", "True"),
                    ("Which nerve is cranial nerve VII?\nA. facial\nAnswer:", "False", "True")],
        "virology": [("What is a prion?\nA. a protein\nAnswer:", "False", "False")],
    }.items():
        with (responses / f"mmlu_{subject}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["prompt", "mistralai/Mixtral-8x7B-Instruct-v0.1",
                             "gpt-4-1106-preview"])
            writer.writerows(rows)
    (root / "mmlu" / "contaminated_prompts.jsonl").write_text(json.dumps(
        {"train_prompt": "x", "eval_prompt": "What is a prion?\nA. a protein\nAnswer:",
         "train_idx": 1, "eval_idx": 2}) + "\n")


def write_llmrouter(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "scores.json").write_text(json.dumps([
        {"question": "who wrote hamlet", "scores": {"small-a": 1.0, "big-b": 0.5}},
        {"question": "solve x^2 = 4", "scores": {"small-a": 0.0, "big-b": 1.0}},
    ]))
    (root / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"task_name": "trivia", "query": "who wrote hamlet", "ground_truth": "shakespeare"},
        {"task_name": "math", "query": "solve x^2 = 4", "ground_truth": "2"},
    ]))
    (root / "candidates.json").write_text(json.dumps({
        "small-a": {"input_price": 0.1, "output_price": 0.2, "size": "7B"},
        "big-b": {"input_price": 1.0, "output_price": 2.0, "size": "70B"},
    }))


def synthetic_rows(n: int) -> list[tuple[str, str, list[float | str], list[float]]]:
    """Hard prompts (proofs) only the strong model gets right; easy ones (greetings) both do."""
    rows: list[tuple[str, str, list[float | str], list[float]]] = []
    for i in range(n):
        if i % 2:
            prompt = f"Prove the theorem about prime number {i} with a rigorous integral bound"
            rows.append((prompt, "proof", [1.0, 0.0 if i % 3 else 1.0], [0.01, 0.001]))
        else:
            prompt = f"Say hello to friend number {i} and wish a nice day"
            rows.append((prompt, "chat", [1.0, 1.0], [0.01, 0.001]))
    return rows


# --- readers ------------------------------------------------------------------------------


def test_routerbench_reader_parses_turns_costs_and_empty_scores(tmp_path: Path) -> None:
    write_routerbench(tmp_path / "a_train.csv", [
        ("What is 2+2?", "gsm", [1.0, 0.0], [0.002, 0.0001]),
        ("Name a colour.", "chat", ["", 1.0], [0.001, 0.00005]),
    ])
    (tmp_path / "README.md").write_text("not data")
    assert sniff(tmp_path / "a_train.csv") is FileKind.ROUTERBENCH
    assert sniff(tmp_path / "README.md") is FileKind.UNKNOWN
    [table] = load_routing_data(tmp_path)
    assert table.source == "routerbench"
    assert table.models == ("org/strong", "weak")
    assert table.prompts == ["What is 2+2?", "Name a colour."]
    assert table.tasks == ["gsm", "chat"]
    assert table.quality[0].tolist() == [1.0, 0.0]
    assert np.isnan(table.quality[1, 0])
    assert table.cost[0].tolist() == [0.002, 0.0001]
    assert len(table.complete_rows()) == 1


def test_routellm_reader_takes_subject_from_file_and_drops_contaminated(tmp_path: Path) -> None:
    write_routellm(tmp_path)
    [table] = load_routing_data(tmp_path)
    assert table.source == "routellm"
    assert table.models == ("mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview")
    assert len(table) == 2  # the virology prompt is contaminated
    assert table.tasks == ["anatomy", "anatomy"]
    assert table.quality.tolist() == [[1.0, 1.0], [0.0, 1.0]]
    price = list_price("gpt-4-1106-preview")
    assert price is not None
    tokens = estimate_tokens(table.prompts[0])
    assert table.cost[0, 1] == pytest.approx(estimate_cost(price, tokens))


def test_llmrouter_reader_joins_tasks_and_prices(tmp_path: Path) -> None:
    write_llmrouter(tmp_path)
    [table] = load_routing_data(tmp_path)
    assert table.source == "llmrouter"
    assert table.models == ("big-b", "small-a")  # sorted
    assert table.tasks == ["trivia", "math"]
    assert table.quality.tolist() == [[0.5, 1.0], [1.0, 0.0]]
    tokens = estimate_tokens("who wrote hamlet")
    assert table.cost[0, 1] == pytest.approx((tokens * 0.1 + 128 * 0.2) / 1e6)


def test_traffic_reader_averages_repeats_and_leaves_gaps(tmp_path: Path) -> None:
    lines = [
        {"prompt": "p1", "model": "mine-small", "score": 1.0, "cost": 0.001},
        {"prompt": "p1", "model": "mine-small", "score": 0.0, "cost": 0.003},
        {"prompt": "p1", "model": "mine-big", "score": 1, "cost": 0.01, "task": "qa"},
        {"prompt": "p2", "model": "mine-big", "score": 0.5, "cost": 0.02},
    ]
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    [table] = load_routing_data(tmp_path)
    assert table.source == "traffic"
    assert table.models == ("mine-small", "mine-big")
    assert table.quality[0].tolist() == [0.5, 1.0]
    assert table.cost[0].tolist() == pytest.approx([0.002, 0.01])
    assert np.isnan(table.quality[1, 0])


# --- metrics, by hand ---------------------------------------------------------------------


def test_hull_interpolation_and_aiq() -> None:
    hull = upper_hull([1, 2, 3, 4], [0.5, 0.6, 0.9, 0.8])
    # (2, 0.6) lies under the chord (1, 0.5)–(3, 0.9); (4, 0.8) is dominated.
    assert hull.tolist() == [[1.0, 0.5], [3.0, 0.9]]
    assert quality_at_cost(hull, 2.0) == pytest.approx(0.7)
    assert quality_at_cost(hull, 10.0) == pytest.approx(0.9)
    assert np.isnan(quality_at_cost(hull, 0.5))
    assert cost_at_quality(hull, 0.7) == pytest.approx(2.0)
    assert cost_at_quality(hull, 0.4) == pytest.approx(1.0)
    assert np.isnan(cost_at_quality(hull, 0.95))
    # Area: (0.5 + 0.9) / 2 × 2 over [1, 3], then 0.9 × 1 flat over [3, 4]; width 3.
    assert aiq(hull, 1.0, 4.0) == pytest.approx((1.4 + 0.9) / 3)


def test_apgr_and_cpt_on_a_hand_computed_pair() -> None:
    weak = np.array([1.0, 0.0, 0.0, 1.0])
    strong = np.array([1.0, 1.0, 1.0, 0.0])  # q_weak 0.5, q_strong 0.75, gap 0.25
    score = np.array([0.5, 0.9, 0.8, 0.1])  # routes prompts 1, 2, 0, 3 to strong in turn
    # quality after 0..4 strong calls: .5 .75 1 1 .75 → PGR 0 1 2 2 1
    assert apgr(score, weak, strong) == pytest.approx(0.25 * (0.5 + 1.5 + 2 + 1.5))
    assert cpt(score, weak, strong, 0.5) == pytest.approx(0.125)
    assert cpt(score, weak, strong, 0.8) == pytest.approx(0.2)
    assert np.isnan(cpt(score, weak, strong, 2.5))


def test_tied_scores_route_together_like_random() -> None:
    weak = np.array([1.0, 0.0, 0.0, 1.0])
    strong = np.array([1.0, 1.0, 1.0, 0.0])
    assert apgr(np.zeros(4), weak, strong) == pytest.approx(0.5)
    assert cpt(np.zeros(4), weak, strong, 0.8) == pytest.approx(0.8)


def test_oracle_takes_the_cheapest_of_the_best() -> None:
    quality = np.array([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    cost = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])
    assert oracle_choice(quality, cost).tolist() == [0, 1, 0]


# --- training -----------------------------------------------------------------------------


def test_training_is_deterministic(tmp_path: Path) -> None:
    write_routerbench(tmp_path / "train.csv", synthetic_rows(80))
    tables = load_routing_data(tmp_path)
    config = TrainingConfig(max_iterations=60, min_prompts_per_term=2)
    first, second = train_router(tables, config), train_router(tables, config)
    first.save(tmp_path / "a.npz")
    second.save(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = RouterArtifact.load(tmp_path / "a.npz")
    prompts = ["Prove the bound for prime 7 rigorously", "Say hello to my friend"]
    p1 = QualityPredictor(loaded).probability_matrix(prompts)
    p2 = QualityPredictor(RouterArtifact.load(tmp_path / "b.npz")).probability_matrix(prompts)
    assert np.array_equal(p1, p2)
    # It learned the pattern: the weak model is worse at proofs than at greetings.
    weak = QualityPredictor(loaded).heads.index("weak")
    assert p1[0, weak] < p1[1, weak]


def test_one_run_keeps_what_each_iteration_limit_trains(tmp_path: Path) -> None:
    """The convergence study's premise: the iterate kept after n steps of a longer run is
    the artifact ``max_iterations=n`` trains, to the byte."""
    write_routerbench(tmp_path / "train.csv", synthetic_rows(80))
    tables = load_routing_data(tmp_path)
    config = TrainingConfig(min_prompts_per_term=2)
    kept = train_router_iterates(tables, config, (5, 15, 60))
    for limit in (5, 15, 60):
        alone = train_router(tables, TrainingConfig(min_prompts_per_term=2,
                                                    max_iterations=limit))
        alone.save(tmp_path / "alone.npz")
        kept[limit].save(tmp_path / "kept.npz")
        assert (tmp_path / "kept.npz").read_bytes() == (tmp_path / "alone.npz").read_bytes()
    assert not np.array_equal(kept[5].sparse_weights, kept[60].sparse_weights)


def test_convergence_rows_are_what_holdout_eval_scores(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_routerbench(tmp_path / "train.csv", synthetic_rows(80))
    tables = load_routing_data(tmp_path)
    config = TrainingConfig(min_prompts_per_term=2)
    kept = cross_validated_iterates(tables, 2, 0, config, (5, 40))
    alone = cross_validated_predictions(tables, 2, 0, TrainingConfig(min_prompts_per_term=2,
                                                                     max_iterations=40))
    assert np.array_equal(kept[40][0].predicted, alone[0].predicted)
    assert not np.array_equal(kept[5][0].predicted, kept[40][0].predicted)
    assert convergence_main(["--data", str(tmp_path), "--iterations", "40,5", "--folds", "2",
                             "--resamples", "10"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith(("| 5 ", "| 40 "))]
    assert [r.split(" | ")[:2] for r in rows] == [["| 5", "routerbench"],
                                                  ["| 40", "routerbench"]]


# --- the decision on the shipped artifact --------------------------------------------------

HARD = ("Write a python function to find the maximum sum of a contiguous subarray in a "
        "circular array, handling the case where all numbers are negative.")
EASY = "What is the capital of France?"
STRONG = Candidate("vendor-strong", 10.0, 30.0, profile="gpt-4-1106-preview")
CHEAP = Candidate("vendor-cheap", 0.2, 0.2, profile="mistral-7b-chat")


@pytest.fixture(scope="module")
def shipped() -> AutoRouter:
    return AutoRouter.load()


def test_high_willingness_to_pay_sends_a_hard_prompt_to_the_strong_model(
        shipped: AutoRouter) -> None:
    decision = shipped.choose(HARD, [CHEAP, STRONG], Policy(willingness_to_pay=5.0))
    assert decision.chosen == "vendor-strong"
    assert decision.ranked == ("vendor-strong", "vendor-cheap")
    assert decision.scores["vendor-strong"] > decision.scores["vendor-cheap"]


def test_low_willingness_to_pay_sends_an_easy_prompt_to_the_cheap_model(
        shipped: AutoRouter) -> None:
    decision = shipped.choose(EASY, [STRONG, CHEAP], Policy(willingness_to_pay=0.001))
    assert decision.chosen == "vendor-cheap"
    assert decision.ranked[-1] == "vendor-strong"  # the failover target


def test_one_knob_sends_easy_prompts_cheap_and_hard_ones_strong(shipped: AutoRouter) -> None:
    policy = Policy(willingness_to_pay=0.05)
    assert shipped.choose(HARD, [CHEAP, STRONG], policy).chosen == "vendor-strong"
    assert shipped.choose(EASY, [STRONG, CHEAP], policy).chosen == "vendor-cheap"


def test_quality_floor_and_cost_ceiling(shipped: AutoRouter) -> None:
    decision = shipped.choose(HARD, [STRONG, CHEAP], Policy(quality_floor=0.0))
    assert decision.chosen == "vendor-cheap"  # both clear a zero floor: the cheaper wins
    decision = shipped.choose(HARD, [STRONG, CHEAP], Policy(quality_floor=1.0))
    assert decision.chosen == "vendor-strong"  # nobody clears it: the best-predicted wins
    ceiling = decision.costs["vendor-cheap"] * 2
    decision = shipped.choose(HARD, [STRONG, CHEAP], Policy(cost_ceiling=ceiling))
    assert decision.ranked == ("vendor-cheap", "vendor-strong")


def test_rank_orders_by_policy() -> None:
    scores = {"a": 0.9, "b": 0.7, "c": 0.6}
    costs = {"a": 0.010, "b": 0.001, "c": 0.0001}
    assert rank(scores, costs, Policy(willingness_to_pay=1.0)) == ("a", "b", "c")
    assert rank(scores, costs, Policy(willingness_to_pay=0.01)) == ("b", "c", "a")  # .6 > .59
    assert rank(scores, costs, Policy(willingness_to_pay=0.001)) == ("c", "b", "a")
    assert rank(scores, costs, Policy(quality_floor=0.65)) == ("b", "a", "c")
    assert rank(scores, costs, Policy(cost_ceiling=0.002)) == ("b", "c", "a")
    assert rank(scores, costs, Policy(willingness_to_pay=0.0)) == ("c", "b", "a")


def test_decision_reports_for_header_and_log(shipped: AutoRouter) -> None:
    decision = shipped.choose(EASY, [STRONG, CHEAP], Policy())
    header = decision.header_value()
    assert header.startswith(decision.chosen + "; q=")
    fields = decision.log_fields()
    assert fields["router_chosen"] == decision.chosen
    assert set(fields["router_scores"]) == {"vendor-strong", "vendor-cheap"}  # type: ignore[arg-type]
    json.dumps(fields)


def test_profiles_accept_tiers_and_reject_unknown_models(shipped: AutoRouter) -> None:
    shipped.validate([Candidate("x", 1, 1, "frontier"), Candidate("y", 1, 1, "Mixtral-8x7B-Chat")])
    with pytest.raises(UnknownProfile, match="unknown router profile 'gpt-9'"):
        shipped.validate([Candidate("z", 1, 1, "gpt-9")])
    with pytest.raises(ValueError):
        Policy(willingness_to_pay=-1)


def test_prompt_text_reads_user_turns() -> None:
    messages = [Message(role="system", content="You are helpful."),
                Message(role="user", content="first"),
                Message(role="assistant", content="ok"),
                Message(role="user", content=[
                    ContentPart(type="text", text="second"),
                    ContentPart(type="image_url", image_url=ImageURL(""))])]
    assert prompt_text(messages) == "first\n\nsecond"


# --- CLI ----------------------------------------------------------------------------------


def test_add_cli_registers_router_train_and_eval() -> None:
    parser = argparse.ArgumentParser(prog="polyroute")
    add_cli(parser.add_subparsers(dest="command"))
    ns = parser.parse_args(["router", "eval", "--data", "d", "--holdout", "--folds", "3"])
    assert ns.holdout and ns.folds == 3 and callable(ns.run)
    ns = parser.parse_args(["router", "train", "--data", "d", "--out", "x.npz"])
    assert ns.out == "x.npz" and callable(ns.run)


def test_train_then_eval_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, unseen = tmp_path / "data", tmp_path / "unseen"
    data.mkdir()
    unseen.mkdir()
    write_routerbench(data / "train.csv", synthetic_rows(80))
    write_routerbench(unseen / "test.csv", synthetic_rows(120)[80:])
    artifact = tmp_path / "router.npz"
    assert cli_main(["train", "--data", str(data), "--out", str(artifact), "-q",
                     "--max-iterations", "60"]) == 0
    assert cli_main(["eval", "--data", str(unseen), "--artifact", str(artifact), "-q",
                     "--resamples", "20", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "AIQ" in out and "APGR" in out and "oracle" in out
    [report] = json.loads((tmp_path / "r.json").read_text())
    assert report["prompts"] == 40
    assert report["pair"]["apgr"]["value"] > 0.5  # better than random on a learnable split
    # Every prompt of the training directory was seen: nothing is left to score.
    assert cli_main(["eval", "--data", str(data), "--artifact", str(artifact), "-q"]) == 1
    assert cli_main(["eval", "--data", str(data), "--holdout", "--folds", "2", "-q",
                     "--resamples", "10", "--max-iterations", "40"]) == 0
