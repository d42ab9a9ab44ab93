"""presidio-analyzer as an optional detector backend (``pip install presidio-analyzer``).

Offline: its ``AnalyzerEngine`` loads a spaCy language model by default, which is a separate
download (``python -m spacy download en_core_web_lg``) that cannot be fetched everywhere; the
recognizers used here are its predefined pattern recognizers (regular expressions confirmed
by checksums, and the ``phonenumbers`` library for phones), which need no model: each is
asked directly, without the NLP artefacts that only raise or lower scores by context words.
Secrets (``api_key``, ``private_key``) have no presidio recognizer and stay with the built-in
detectors.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterable
from typing import Any

from polyroute.guardrails.detectors import Finding, detect, resolve

RECOGNIZERS: dict[str, tuple[tuple[str, str], ...]] = {
    "email": (("EmailRecognizer", "EMAIL_ADDRESS"),),
    "phone": (("PhoneRecognizer", "PHONE_NUMBER"),),
    "card": (("CreditCardRecognizer", "CREDIT_CARD"),),
    "iban": (("IbanRecognizer", "IBAN_CODE"),),
    "national_id": (("UsSsnRecognizer", "US_SSN"), ("UkNinoRecognizer", "UK_NINO")),
    "ip": (("IpRecognizer", "IP_ADDRESS"),),
}
"""Our kind → presidio's predefined recognizers (class name, entity) standing for it."""
MIN_SCORE = 0.4
"""Presidio's pattern scores without context words; below this a finding is a weak guess
(its bare 9-digit 'SSN' pattern scores 0.05, a Luhn-valid card 1.0)."""


def available() -> bool:
    return importlib.util.find_spec("presidio_analyzer") is not None


def detector(kinds: Iterable[str]) -> Callable[[str, Iterable[str] | None], list[Finding]]:
    """A ``detect``-shaped function: presidio's recognizers for the kinds it has, the
    built-in detectors for the rest. Raises ImportError without presidio-analyzer."""
    module = importlib.import_module("presidio_analyzer.predefined_recognizers")
    wanted = frozenset(kinds)
    recognizers: list[tuple[str, str, Any]] = []
    for kind in sorted(wanted & RECOGNIZERS.keys()):
        for class_name, entity in RECOGNIZERS[kind]:
            cls = getattr(module, class_name, None)
            if cls is not None:  # UkNinoRecognizer is newer than some releases
                recognizers.append((kind, entity, cls()))
    builtin = wanted - RECOGNIZERS.keys()

    def find(text: str, only: Iterable[str] | None = None) -> list[Finding]:
        want = wanted if only is None else wanted & frozenset(only)
        found = detect(text, builtin & want) if builtin & want else []
        for kind, entity, recognizer in recognizers:
            if kind in want:
                found.extend(Finding(kind, r.start, r.end)
                             for r in recognizer.analyze(text, [entity], None)
                             if r.score >= MIN_SCORE)
        return resolve(found)

    return find
