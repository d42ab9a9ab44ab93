"""Keeping secrets out of anything a client or a log reader sees.

Two kinds of secret pass through the gateway. The operator's (upstream keys, the master key, a
database URL) are known values, listed in the config: they are replaced wherever they appear,
and so is any run of :data:`MIN_FRAGMENT` or more of their characters, because vendors echo a
key cut short ("Incorrect API key provided: sk-abc…"). The clients' virtual keys are not known
in advance (a log line may hold one that does not exist), so they are found by their shape and
cut to the public id, the same preview the admin API shows.

Imports nothing of polyroute: errors (:mod:`polyroute.adapters.client`) and logs
(:mod:`polyroute.observability.logging`) both use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"

MIN_SECRET = 8
"""Shorter values would redact innocent text, and are not real keys anyway."""

MIN_FRAGMENT = 12
"""A run of this many characters of a secret is redacted too: a vendor that echoes part of a
key gives away that much of it, while 12 characters of base64 never occur by chance."""

_VIRTUAL_KEY = re.compile(r"sk-pr-(?:([0-9a-f]{16})-)?[^\s'\"\\,;&}\]]*")
"""A virtual key (``sk-pr-<id>-<secret>``), or anything that starts like one: a malformed key
in a refused request is logged as text too. Stops at a quote, a backslash (a repr's escape of a
byte that is not text), whitespace, a JSON delimiter or a query string's '&'."""


def mask_virtual_keys(text: str) -> str:
    """``sk-pr-<id>-<secret>`` → ``sk-pr-<id>-…``; anything else after ``sk-pr-`` → ``…``."""
    if "sk-pr-" not in text:
        return text
    return _VIRTUAL_KEY.sub(_preview, text)


def _preview(match: re.Match[str]) -> str:
    key_id = match.group(1)
    return f"sk-pr-{key_id}-…" if key_id else "sk-pr-…"


class Redactor:
    """Replaces known secrets, and fragments of them, in text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = {s for s in secrets if len(s) >= MIN_SECRET}
        # Longest first, so that a secret containing another is replaced whole.
        self._secrets = tuple(sorted(values, key=len, reverse=True))
        fragments = {s[i:i + MIN_FRAGMENT] for s in values
                     for i in range(len(s) - MIN_FRAGMENT + 1)}
        self._fragments = frozenset(fragments)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def with_secrets(self, more: Iterable[str]) -> Redactor:
        """This redactor plus ``more`` (e.g. the credentials one request carried)."""
        extra = [s for s in more if len(s) >= MIN_SECRET and s not in self._secrets]
        return Redactor((*self._secrets, *extra)) if extra else self

    def redact(self, text: str) -> str:
        if not self._secrets:
            return text
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if len(text) < MIN_FRAGMENT:
            return text
        return self._redact_fragments(text)

    def _redact_fragments(self, text: str) -> str:
        """Every span of ``text`` covered by a run of a secret's characters, replaced.

        One pass over the text's windows, a set lookup each: this runs on error messages
        (a few hundred characters), never on the request path."""
        fragments, size = self._fragments, MIN_FRAGMENT
        spans: list[tuple[int, int]] = []
        for i in range(len(text) - size + 1):
            if text[i:i + size] in fragments:
                if spans and i <= spans[-1][1]:
                    spans[-1] = (spans[-1][0], i + size)
                else:
                    spans.append((i, i + size))
        if not spans:
            return text
        out, last = [], 0
        for start, end in spans:
            out += [text[last:start], REDACTED]
            last = end
        out.append(text[last:])
        return "".join(out)
