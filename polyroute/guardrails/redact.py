"""Redaction with placeholders, optionally reversible: ``[EMAIL_1]`` stands for the first
e-mail address of a request (the same value always gets the same placeholder), and the
mapping, kept only in the gateway's memory for the request, restores the values in the
answer so that the client sees them while the upstream never did."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from polyroute.guardrails.detectors import Finding, detect

_PLACEHOLDER = re.compile(r"\[(?:PRIVATE_KEY|API_KEY|EMAIL|IBAN|CARD|NATIONAL_ID|IP|PHONE)_\d+\]")


@dataclass(slots=True)
class Redactor:
    kinds: frozenset[str]
    values: dict[str, str] = field(default_factory=dict)
    """Placeholder → original value."""
    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    """Values redacted per kind (for the request's record)."""

    def redact(self, text: str, found: list[Finding] | None = None) -> str:
        found = detect(text, self.kinds) if found is None else found
        if not found:
            return text
        out: list[str] = []
        at = 0
        for f in found:
            value = text[f.start:f.end]
            key = (f.kind, value)
            placeholder = self._by_value.get(key)
            if placeholder is None:
                n = self.counts.get(f.kind, 0) + 1
                self.counts[f.kind] = n
                placeholder = f"[{f.kind.upper()}_{n}]"
                self._by_value[key] = placeholder
                self.values[placeholder] = value
            out.append(text[at:f.start])
            out.append(placeholder)
            at = f.end
        out.append(text[at:])
        return "".join(out)

    def restore(self, text: str) -> str:
        """The answer with every placeholder this request made put back."""
        if not self.values or "[" not in text:
            return text
        return _PLACEHOLDER.sub(lambda m: self.values.get(m.group(), m.group()), text)


HOLD_BACK = 24
"""A stream's text is restored with this many characters held back while they may be the
start of a placeholder (the longest, ``[NATIONAL_ID_999]``, is shorter)."""


@dataclass(slots=True)
class StreamRestorer:
    """Restores placeholders in a stream of text fragments, holding back a fragment's tail
    only while it may be the beginning of a placeholder split across fragments."""

    redactor: Redactor
    _held: str = ""

    def feed(self, fragment: str) -> str:
        text = self._held + fragment
        cut = text.rfind("[")
        if cut != -1 and "]" not in text[cut:] and len(text) - cut <= HOLD_BACK:
            self._held, text = text[cut:], text[:cut]
        else:
            self._held = ""
        return self.redactor.restore(text)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return self.redactor.restore(held)
