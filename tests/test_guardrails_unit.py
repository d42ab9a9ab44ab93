"""The built-in detectors, redaction and its restoration (issue 11, item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyroute.guardrails.detectors import CLASSES, detect, iban_valid, luhn
from polyroute.guardrails.redact import Redactor, StreamRestorer
from polyroute.model.governance import DATA_CLASSES

CORPUS = Path(__file__).resolve().parent.parent / "bench" / "guardrails" / "corpus.jsonl"


def found(text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start:f.end]) for f in detect(text)]


def test_checksums() -> None:
    assert luhn("4242424242424242") and not luhn("4242424242424241")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and iban_valid("DE89370400440532013000")
    assert not iban_valid("GB82 WEST 1234 5698 7654 33")  # one digit off
    assert not iban_valid("DE8937040044053201300")  # Germany's length is 22


@pytest.mark.parametrize(("text", "expected"), [
    ("mail a.b@example.com now", [("email", "a.b@example.com")]),
    ("card 4242 4242 4242 4242", [("card", "4242 4242 4242 4242")]),
    ("card 4242 4242 4242 4241", []),  # fails Luhn: not reported as a card, nor a phone
    ("ssn 123-45-6789", [("national_id", "123-45-6789")]),
    ("at 192.0.2.1 and 2001:db8::1", [("ip", "192.0.2.1"), ("ip", "2001:db8::1")]),
    ("version 1.2.3 on 2024-01-15 at 12:30:45", []),
    ("AKIAIOSFODNN7EXAMPLE", [("api_key", "AKIAIOSFODNN7EXAMPLE")]),
])
def test_detect(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


def test_redaction_is_consistent_and_reversible() -> None:
    r = Redactor(CLASSES["pii"])
    text = "a@example.com wrote to b@example.com, then a@example.com again"
    redacted = r.redact(text)
    assert redacted == "[EMAIL_1] wrote to [EMAIL_2], then [EMAIL_1] again"
    assert r.restore("Dear [EMAIL_2], [EMAIL_1] says hi; [EMAIL_9] is unknown") == \
        "Dear b@example.com, a@example.com says hi; [EMAIL_9] is unknown"
    assert r.counts == {"email": 2}


def test_a_placeholder_split_across_stream_chunks_is_restored() -> None:
    r = Redactor(CLASSES["pii"])
    r.redact("call +44 20 7946 0958")
    stream = StreamRestorer(r)
    pieces = ["Calling [PH", "ONE_", "1] now [", "not a placeholder] ok ["]
    out = "".join(stream.feed(p) for p in pieces) + stream.flush()
    assert out == "Calling +44 20 7946 0958 now [not a placeholder] ok ["


def test_every_policy_data_class_has_detectors() -> None:
    assert set(DATA_CLASSES) == set(CLASSES)


def test_the_corpus_is_labelled_and_the_detectors_find_most_of_it() -> None:
    tp = fp = fn = 0
    for line in CORPUS.read_text().splitlines():
        example = json.loads(line)
        assert example["source"], example
        expected = {(k, v) for k, v in example["spans"]}
        got = set(found(example["text"]))
        tp, fp, fn = tp + len(got & expected), fp + len(got - expected), fn + len(expected - got)
    # the figures docs/governance.md reports (bench/guardrails/measure.py prints them)
    assert tp / (tp + fp) >= 0.8 and tp / (tp + fn) >= 0.85
