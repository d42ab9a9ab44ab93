"""Cascade judges measured offline: ``python -m polyroute.autorouter.cascade_eval --data DIR``.

Only RouterBench publishes each model's answer text next to its score and billed cost, so only
it can replay a cascade: ask the cheap step, judge its recorded answer with the same judge
functions the gateway runs (:mod:`.judges`), and pay for the strong model only when the judge
escalates. What the data cannot show is said in the output: token log-probabilities are not
recorded anywhere; there is one answer per model and prompt, so "two samples agree" is
replayed as two *different* cheap models agreeing (a stricter test than two samples of one
model, which share their mistakes more); a verifier would need new calls.

Nothing is trained here; the judges have fixed thresholds (the config defaults). Choosing which
cascade to recommend *is* a fit, so the prompts are split in two by a hash of their text: the
cascade with the best quality within the budget on the *selection* half is reported on the
*report* half, which played no part in the choice.
"""

from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from polyroute.autorouter import judges
from polyroute.autorouter.readers.csv_text import open_csv
from polyroute.autorouter.readers.routerbench import COST_SUFFIX, prompt_text

STRONG = "gpt-4-1106-preview"
RESPONSE_SUFFIX = "|model_response"
_CHOICE = re.compile(r"^\W*([A-E])\W*$")
_CODE = re.compile(r"```(?:python)?\s*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Replay:
    """RouterBench rows with every model's score, cost and answer."""

    prompts: list[str]
    tasks: list[str]
    models: tuple[str, ...]
    quality: npt.NDArray[np.float64]
    cost: npt.NDArray[np.float64]
    answers: list[list[str]]

    def column(self, model: str) -> int:
        for j, name in enumerate(self.models):
            if name == model or name.rsplit("/", 1)[-1] == model:
                return j
        raise KeyError(model)


def load_replay(paths: Sequence[Path]) -> Replay:
    prompts: list[str] = []
    tasks: list[str] = []
    quality: list[list[float]] = []
    cost: list[list[float]] = []
    answers: list[list[str]] = []
    models: tuple[str, ...] = ()
    for path in paths:
        with open_csv(path) as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            here = tuple(c[: -len(COST_SUFFIX)] for c in header if c.endswith(COST_SUFFIX))
            if not here or not all(m + RESPONSE_SUFFIX in header for m in here):
                continue
            if models and here != models:
                raise ValueError(f"{path}: another model set than the files before it")
            models = here
            for row in reader:
                scores = [_number(row.get(m)) for m in models]
                if any(np.isnan(s) for s in scores):
                    continue  # RouterBench's few unscored rows
                prompts.append(prompt_text(row["prompt"]))
                tasks.append(row.get("eval_name") or path.stem)
                quality.append(scores)
                cost.append([_number(row.get(m + COST_SUFFIX)) for m in models])
                answers.append([_answer(row.get(m + RESPONSE_SUFFIX) or "") for m in models])
    return Replay(prompts, tasks, models, np.array(quality), np.array(cost), answers)


def _number(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "") else float("nan")
    except ValueError:
        return float("nan")


def _answer(raw: str) -> str:
    """The response column holds a Python list literal of the answer's turns."""
    text = prompt_text(raw)
    return text if text is not raw or not raw.startswith("[") else raw


def well_formed(task: str, answer: str) -> bool:
    """The structural judge as a deployment would configure it for these tasks: a single
    choice letter for multiple choice, Python that parses for code."""
    if task == "mbpp":
        code = _CODE.search(answer)
        source = code.group(1) if code else answer
        if "[PYTHON]" in answer:
            source = answer.split("[PYTHON]", 1)[1].split("[/PYTHON]", 1)[0]
        try:
            ast.parse(source)
        except (SyntaxError, ValueError):
            return False
        return "def " in source
    return _CHOICE.match(answer.strip()) is not None


def first_choice(answer: str) -> str:
    match = _CHOICE.match(answer.strip())
    return match.group(1) if match else answer


Judge = Callable[[Replay, int], bool]
"""Whether the cheap step's answer to row i is kept."""


@dataclass(frozen=True, slots=True)
class Cascade:
    name: str
    steps: tuple[str, ...]
    """Models in order; the last is kept unjudged."""
    judge: str
    """structure | agreement | structure+agreement | oracle (the perfect judge: a ceiling)."""
    partner: str | None = None
    """agreement: the second cheap model asked the same question (paid for on every row)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    quality: float
    cost: float
    escalation: float
    """Share of prompts the first step's answer was rejected for."""


def run(replay: Replay, cascade: Cascade, rows: npt.NDArray[np.intp],
        threshold: float = 0.8) -> Outcome:
    cols = [replay.column(m) for m in cascade.steps]
    partner = replay.column(cascade.partner) if cascade.partner else None
    quality = cost = escalated = 0.0
    for i in rows:
        paid = 0.0
        kept = cols[-1]
        for depth, j in enumerate(cols):
            paid += replay.cost[i, j]
            if depth == len(cols) - 1:
                break
            keep = _kept(replay, cascade, i, j, partner, threshold)
            if partner is not None and depth == 0:
                paid += replay.cost[i, partner]
            if keep:
                kept = j
                break
            if depth == 0:
                escalated += 1
        quality += replay.quality[i, kept]
        cost += paid
    n = max(1, len(rows))
    return Outcome(quality / n, cost / n, escalated / n)


def _kept(replay: Replay, cascade: Cascade, i: int, j: int, partner: int | None,
          threshold: float) -> bool:
    task, answer = replay.tasks[i], replay.answers[i][j]
    if cascade.judge == "oracle":
        return bool(replay.quality[i, j] >= 1.0)
    ok = True
    if "structure" in cascade.judge:
        ok = well_formed(task, answer)
    if ok and "agreement" in cascade.judge and partner is not None:
        other = replay.answers[i][partner]
        if task != "mbpp":
            answer, other = first_choice(answer), first_choice(other)
        ok = judges.agreement(answer, other) >= threshold
    return ok


CASCADES = (
    Cascade("mistral-7b → gpt-4, structure", ("mistral-7b-chat", STRONG), "structure"),
    Cascade("mixtral → gpt-4, structure", ("mixtral-8x7b-chat", STRONG), "structure"),
    Cascade("mistral-7b → gpt-4, agreement with mixtral",
            ("mistral-7b-chat", STRONG), "agreement", "mixtral-8x7b-chat"),
    Cascade("mixtral → gpt-4, agreement with mistral-7b",
            ("mixtral-8x7b-chat", STRONG), "agreement", "mistral-7b-chat"),
    Cascade("mixtral → gpt-4, agreement with Yi-34B",
            ("mixtral-8x7b-chat", STRONG), "agreement", "Yi-34B-Chat"),
    Cascade("Yi-34B → gpt-4, agreement with mixtral",
            ("Yi-34B-Chat", STRONG), "agreement", "mixtral-8x7b-chat"),
    Cascade("mixtral → gpt-4, structure + agreement with Yi-34B",
            ("mixtral-8x7b-chat", STRONG), "structure+agreement", "Yi-34B-Chat"),
    Cascade("mixtral → gpt-3.5 → gpt-4, agreement with Yi-34B",
            ("mixtral-8x7b-chat", "gpt-3.5-turbo-1106", STRONG), "agreement", "Yi-34B-Chat"),
    Cascade("mistral-7b → gpt-4, oracle judge (ceiling)", ("mistral-7b-chat", STRONG),
            "oracle"),
    Cascade("mixtral → gpt-4, oracle judge (ceiling)", ("mixtral-8x7b-chat", STRONG),
            "oracle"),
)


def halves(prompts: Sequence[str]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Selection and report rows, by a hash of the prompt (stable across runs)."""
    side = np.array([hashlib.blake2b(p.encode(), digest_size=2).digest()[0] & 1
                     for p in prompts])
    return np.flatnonzero(side == 0), np.flatnonzero(side == 1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polyroute.autorouter.cascade_eval",
                                     description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--data", required=True, help="the routing data directory")
    parser.add_argument("--budget", type=float, default=0.15,
                        help="the cost budget as a share of GPT-4's (default 0.15)")
    ns = parser.parse_args(argv)
    root = Path(ns.data)
    if not root.exists():
        print(f"cascade_eval: no such file or directory: {root}", file=sys.stderr)
        return 2
    files = sorted(root.rglob("*.csv")) if root.is_dir() else [root]
    replay = load_replay(files)
    if not replay.prompts:
        print(f"cascade_eval: no RouterBench file with answer text under {root} (the only "
              "source that records answers)", file=sys.stderr)
        return 2
    select, report = halves(replay.prompts)
    strong = replay.column(STRONG)
    print(f"{len(replay.prompts)} RouterBench prompts with every model's answer; selection "
          f"half {len(select)}, report half {len(report)}")
    for name, rows in (("selection", select), ("report", report)):
        print(f"  GPT-4 alone on the {name} half: quality "
              f"{replay.quality[rows, strong].mean():.3f} at "
              f"${replay.cost[rows, strong].mean():.6f}")
    print(f"\n{'cascade':<58} {'half':<9} {'quality':>8} {'cost/GPT-4':>10} {'escalated':>9}")
    best: tuple[float, Cascade] | None = None
    for cascade in CASCADES:
        for name, rows in (("selection", select), ("report", report)):
            out = run(replay, cascade, rows)
            share = out.cost / replay.cost[rows, strong].mean()
            print(f"{cascade.name:<58} {name:<9} {out.quality:8.3f} {share:10.1%} "
                  f"{out.escalation:9.1%}")
            if name == "selection" and cascade.judge != "oracle" and share <= ns.budget \
                    and (best is None or out.quality > best[0]):
                best = (out.quality, cascade)
    if best is None:
        print(f"\nno real cascade stays within {ns.budget:.0%} of GPT-4's cost on the "
              "selection half")
        return 0
    chosen = best[1]
    out = run(replay, chosen, report)
    share = out.cost / replay.cost[report, strong].mean()
    target = replay.quality[report, strong].mean()
    print(f"\nchosen on the selection half (best quality within {ns.budget:.0%}): {chosen.name}")
    print(f"report half: quality {out.quality:.3f} at {share:.1%} of GPT-4's cost "
          f"(GPT-4 {target:.3f}); escalated {out.escalation:.1%} — target "
          f"{'met' if out.quality >= target and share <= ns.budget else 'missed'}")
    print("\nnot measurable offline: token log-probabilities (no source records them), two "
          "samples of one model (one answer per model), a verifier model (needs new calls)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
