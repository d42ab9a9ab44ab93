"""Vendors' rate-limit headers, read into what is left of a deployment's quota.

OpenAI (and xAI, Groq, most OpenAI-compatible servers): ``x-ratelimit-{limit,remaining,reset}-
{requests,tokens}``, resets as durations (``1s``, ``6m0s``, ``250ms``). Azure OpenAI sends only
the ``remaining`` pair. Anthropic: ``anthropic-ratelimit-{requests,tokens}-{limit,remaining,
reset}``, resets as RFC 3339 times.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

_UNKNOWN_RESET_S = 60.0
"""A header without a reset is trusted for a minute (the windows vendors count in)."""
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class Remaining:
    remaining: int
    limit: int | None
    until: float
    """Unix time the figure is good until (the vendor's reset)."""

    def share(self, now: float, configured: int | None) -> float | None:
        if now >= self.until:
            return None  # the window has reset: the figure says nothing any more
        limit = self.limit or configured
        if limit:
            return self.remaining / limit
        return 0.0 if self.remaining <= 0 else None


@dataclass(frozen=True, slots=True)
class VendorQuota:
    requests: Remaining | None
    tokens: Remaining | None

    def shares(self, now: float, rpm: int | None, tpm: int | None) -> Iterator[float]:
        for part, configured in ((self.requests, rpm), (self.tokens, tpm)):
            if part is not None:
                share = part.share(now, configured)
                if share is not None:
                    yield share


def read_quota(headers: Mapping[str, str], now: float) -> VendorQuota | None:
    """What ``headers`` say of the quota left, or None when they say nothing."""
    requests = _openai(headers, "requests", now) or _anthropic(headers, "requests", now)
    tokens = _openai(headers, "tokens", now) or _anthropic(headers, "tokens", now)
    if requests is None and tokens is None:
        return None
    return VendorQuota(requests, tokens)


def _openai(headers: Mapping[str, str], kind: str, now: float) -> Remaining | None:
    remaining = _int(headers.get(f"x-ratelimit-remaining-{kind}"))
    if remaining is None:
        return None
    reset = duration_s(headers.get(f"x-ratelimit-reset-{kind}"))
    return Remaining(remaining, _int(headers.get(f"x-ratelimit-limit-{kind}")),
                     now + (_UNKNOWN_RESET_S if reset is None else reset))


def _anthropic(headers: Mapping[str, str], kind: str, now: float) -> Remaining | None:
    remaining = _int(headers.get(f"anthropic-ratelimit-{kind}-remaining"))
    if remaining is None:
        return None
    until = now + _UNKNOWN_RESET_S
    reset = headers.get(f"anthropic-ratelimit-{kind}-reset")
    if reset:
        with contextlib.suppress(ValueError):
            until = datetime.fromisoformat(reset.replace("Z", "+00:00")).timestamp()
    return Remaining(remaining, _int(headers.get(f"anthropic-ratelimit-{kind}-limit")), until)


def duration_s(text: str | None) -> float | None:
    """OpenAI's reset durations ('1s', '6m0s', '1.5s', '250ms'); a bare number is seconds."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text.strip():
        return None
    return sum(float(amount) * _UNIT_S[unit] for amount, unit in parts)


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(float(text))
    except ValueError:
        return None
