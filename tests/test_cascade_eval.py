"""The offline cascade replay (``polyroute.autorouter.cascade_eval``) on a hand-made file in
RouterBench's exact layout: what a cascade keeps, what it escalates and what it pays."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from polyroute.autorouter.cascade_eval import Cascade, load_replay, main, run, well_formed

MODELS = ("mistralai/mistral-7b-chat", "mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview")
# prompt, per model: (score, answer, cost)
ROWS = [
    ("Q1? A) x B) y", [(1, "A", 0.001), (1, "A\n", 0.002), (1, "A", 0.05)]),   # agree, right
    ("Q2? A) x B) y", [(0, "B", 0.001), (1, "A", 0.002), (1, "A", 0.05)]),     # disagree
    ("Q3? A) x B) y", [(0, "I think", 0.001), (0, "B", 0.002), (1, "A", 0.05)]),  # malformed
    ("Q4? A) x B) y", [(0, "B", 0.001), (0, "B", 0.002), (1, "A", 0.05)]),     # agree, wrong
]


def write(path: Path) -> None:
    header = ["", "sample_id", "prompt", "eval_name", *MODELS,
              *(f"{m}|model_response" for m in MODELS), *(f"{m}|total_cost" for m in MODELS),
              "oracle_model_to_route_to"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i, (prompt, cells) in enumerate(ROWS):
            writer.writerow([i, f"arc.{i}", repr([prompt]), "arc-challenge",
                             *(c[0] for c in cells), *(repr([c[1]]) for c in cells),
                             *(c[2] for c in cells), MODELS[2]])


def test_replay_keeps_escalates_and_pays_every_step(tmp_path: Path) -> None:
    write(tmp_path / "arc.csv")
    replay = load_replay([tmp_path / "arc.csv"])
    rows = np.arange(len(ROWS))
    agreement = run(replay, Cascade("a", ("mistral-7b-chat", "gpt-4-1106-preview"),
                                    "agreement", "mixtral-8x7b-chat"), rows)
    # Q1 and Q4 kept (they agree; Q4 wrongly), Q2 and Q3 escalated to GPT-4.
    assert agreement.escalation == 0.5
    assert agreement.quality == 0.75
    assert np.isclose(agreement.cost, (4 * 0.003 + 2 * 0.05) / 4)
    structure = run(replay, Cascade("s", ("mistral-7b-chat", "gpt-4-1106-preview"),
                                    "structure"), rows)
    assert structure.escalation == 0.25 and structure.quality == 0.5  # only Q3 escalates
    oracle = run(replay, Cascade("o", ("mistral-7b-chat", "gpt-4-1106-preview"), "oracle"),
                 rows)
    assert oracle.quality == 1.0 and oracle.escalation == 0.75


def test_structure_checks() -> None:
    assert well_formed("arc-challenge", " B\n") and not well_formed("arc-challenge", "B or C")
    assert well_formed("mbpp", "```python\ndef f(x):\n    return x\n```")
    assert not well_formed("mbpp", "```python\ndef f(x) return x\n```")


def test_the_command_names_a_missing_directory(tmp_path: Path) -> None:
    assert main(["--data", str(tmp_path / "nope")]) == 2
    assert main(["--data", str(tmp_path)]) == 2  # no RouterBench file with answers
