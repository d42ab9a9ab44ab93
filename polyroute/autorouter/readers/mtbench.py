"""RouteLLM's MT-Bench data (``routellm/evals/mt_bench/``): FastChat's single-answer grading.

- ``question.jsonl``: ``{question_id, category, turns: [first, second]}``;
- ``judgements.jsonl`` (and FastChat's ``model_judgment/gpt-4_single.jsonl``, the layout of
  RouteLLM's ``benchmarks/mt-bench/``): ``{question_id, model, judge, user_prompt, judgment,
  score, turn, tstamp}``, a GPT-4 score of 1–10 per answer and turn; -1 when the judge's
  rating could not be parsed.

As RouteLLM does, a question's quality for a model is its mean score over the judged turns,
and only the first turn is the prompt routed on. Scores are mapped onto 0..1 as
``(score - 1) / 9``. Without ``question.jsonl`` the first turn is read back out of the judge's
``user_prompt``. A question whose first or second turn is in ``contaminated_prompts.jsonl`` is
dropped, as RouteLLM drops it. The category is the task."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from polyroute.autorouter.readers.long import Observation

_QUOTES = (("[Question]\n", "\n\n[The Start of"), ("### User:\n", "\n\n### "))
"""Where FastChat's judge prompts quote the first question: single-answer grading of turn 1
(``single-v1``, ``single-math-v1``), and of turn 2 (``…-multi-turn``, which quotes the whole
conversation, or the reference conversation first for math)."""


def is_question_record(record: Any) -> bool:
    return (isinstance(record, Mapping) and isinstance(record.get("question_id"), int)
            and isinstance(record.get("turns"), list) and bool(record["turns"])
            and all(isinstance(t, str) for t in record["turns"]))


def is_judgement_record(record: Any) -> bool:
    return (isinstance(record, Mapping) and isinstance(record.get("question_id"), int)
            and isinstance(record.get("model"), str)
            and isinstance(record.get("score"), int | float)
            and not isinstance(record.get("score"), bool))


def observations(judgements: Iterable[Mapping[str, Any]],
                 questions: Mapping[int, Mapping[str, Any]],
                 contaminated: set[str]) -> Iterable[Observation]:
    for j in judgements:
        question = questions.get(j["question_id"])
        turns: list[str] = list(question["turns"]) if question else []
        if not turns:
            first = first_user_turn(str(j.get("user_prompt") or ""))
            if first is None:
                continue
            turns = [first]
        if any(t in contaminated for t in turns[:2]):
            continue
        score = float(j["score"])
        yield Observation(
            prompt=turns[0],
            task=str(question.get("category") or "mt-bench") if question else "mt-bench",
            model=j["model"],
            quality=(score - 1) / 9 if 1 <= score <= 10 else float("nan"))


def first_user_turn(user_prompt: str) -> str | None:
    """The first user turn quoted in FastChat's judge prompt."""
    for opening, closing in _QUOTES:
        start = user_prompt.find(opening)
        if start >= 0:
            start += len(opening)
            end = user_prompt.find(closing, start)
            return user_prompt[start:end if end >= 0 else None].strip() or None
    return None
