"""Precision and recall of each guardrail detector on the labelled corpus, and its CPU cost
per request.

    PYTHONPATH=. python bench/guardrails/measure.py [--iterations 2000] [--backend presidio]

A finding counts as right when its kind and exact text match a labelled span; every other
finding is a false positive, every labelled span not found a false negative. CPU per request
is ``time.process_time`` over ``--iterations`` runs of ``detect`` on a typical chat prompt
(~1 KB: a paragraph with an e-mail, a phone number and a card) and on a 16 KB one, per kind
alone and all kinds together, plus redaction of the 1 KB prompt, and all kinds on 1 KB and
16 KB of plain prose holding one date (most prompts: few digits, no '@', no key).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from polyroute.guardrails import detectors
from polyroute.guardrails.detectors import KINDS, Finding
from polyroute.guardrails.redact import Redactor

Detect = Callable[[str, Iterable[str] | None], list[Finding]]

CORPUS = Path(__file__).with_name("corpus.jsonl")
PARAGRAPH = (
    "Hello, I need help with my order. I bought two items last week and only one arrived; "
    "the tracking page says delivered on 2024-05-02 at 14:31. My name is Jane and you can "
    "reach me at jane.doe@example.com or on +44 20 7946 0958. I paid with the card "
    "4242 4242 4242 4242. Version 2.3.1 of your app crashes when I open the orders tab, "
    "and the error mentions request 8f3a2c1d. Could you refund the missing item or send it "
    "again? I have attached the receipt. Thank you for your help, and have a nice day. ")
PROSE = (  # what most prompts look like: words, few digits (the prefilter's good case)
    "The quarterly review covered hiring plans, the office move and the new onboarding "
    "guide. Everyone agreed that the guide should be shorter, that examples help more "
    "than rules, and that new colleagues should pair with someone for their first week. "
    "The move is planned for the spring; the facilities team will share a timetable. ")


def scores(detect: Detect) -> dict[str, tuple[int, int, int]]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for line in CORPUS.read_text().splitlines():
        example = json.loads(line)
        text = example["text"]
        expected = Counter((k, v) for k, v in example["spans"])
        found = Counter((f.kind, text[f.start:f.end]) for f in detect(text, None))
        for item, n in found.items():
            hit = min(n, expected[item])
            tp[item[0]] += hit
            fp[item[0]] += n - hit
        for item, n in expected.items():
            fn[item[0]] += max(0, n - found[item])
    return {k: (tp[k], fp[k], fn[k]) for k in KINDS}


def cpu_us(fn: object, iterations: int) -> float:
    call = fn  # type: ignore[assignment]
    start = time.process_time()
    for _ in range(iterations):
        call()  # type: ignore[operator]
    return (time.process_time() - start) / iterations * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--backend", choices=["builtin", "presidio"], default="builtin",
                        help="presidio: presidio-analyzer's pattern recognizers for personal "
                        "data (pip install presidio-analyzer), the built-in ones for secrets")
    args = parser.parse_args()
    n = args.iterations
    detect: Detect = detectors.detect
    if args.backend == "presidio":
        from polyroute.guardrails import presidio

        detect = presidio.detector(KINDS)
    print(f"backend: {args.backend}")
    examples = len(CORPUS.read_text().splitlines())
    print(f"corpus: {examples} examples ({CORPUS.name})\n")
    print("| detector | TP | FP | FN | precision | recall | CPU µs / 1 KB prompt | "
          "CPU µs / 16 KB prompt |")
    print("|---|---|---|---|---|---|---|---|")
    small = PARAGRAPH * 2
    large = PARAGRAPH * 32
    total = [0, 0, 0]
    for kind, (tp, fp, fn) in scores(detect).items():
        total = [total[0] + tp, total[1] + fp, total[2] + fn]
        p = f"{tp / (tp + fp):.2f}" if tp + fp else "–"
        r = f"{tp / (tp + fn):.2f}" if tp + fn else "–"
        k = (kind,)
        print(f"| {kind} | {tp} | {fp} | {fn} | {p} | {r} | "
              f"{cpu_us(lambda k=k: detect(small, k), n):.1f} | "
              f"{cpu_us(lambda k=k: detect(large, k), max(1, n // 16)):.1f} |")
    tp, fp, fn = total
    print(f"| **all** | {tp} | {fp} | {fn} | {tp / (tp + fp):.2f} | {tp / (tp + fn):.2f} | "
          f"{cpu_us(lambda: detect(small, None), n):.1f} | "
          f"{cpu_us(lambda: detect(large, None), max(1, n // 16)):.1f} |")
    for size in (1000, 16000):
        prose = (PROSE * (size // len(PROSE) + 1))[:size - 30] + " Due on 2024-05-02, thanks."
        print(f"\nall kinds on {size // 1000} KB of prose with one date: "
              f"{cpu_us(lambda p=prose: detect(p, None), max(1, n * 1000 // size)):.1f} µs", end="")
    def redact() -> str:
        return Redactor(frozenset(KINDS)).redact(small, detect(small, None))

    print(f"\nredact (all kinds) the 1 KB prompt: {cpu_us(redact, n):.1f} µs; "
          f"prompt size {len(small)} B / {len(large)} B")


if __name__ == "__main__":
    main()
