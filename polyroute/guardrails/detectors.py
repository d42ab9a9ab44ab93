"""Detectors of personal data and secrets: a regular expression finds candidates, a check
confirms them where the format has one (Luhn for payment cards, ISO 7064 mod 97 for IBANs,
the reserved ranges of US social security numbers, ``ipaddress`` for IPv6).

Each detector is a pure function of text; what they find is a list of :class:`Finding`
(kind and span). Findings that overlap are resolved by ``ORDER``: the most specific format
wins (a card number is not also reported as a phone number).

Data classes group the kinds: ``pii`` (email, phone, card, iban, national_id, ip) and
``secrets`` (api_key, private_key); a policy may also name a single kind.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

KINDS = ("private_key", "api_key", "email", "iban", "card", "national_id", "ip", "phone")
ORDER = {kind: i for i, kind in enumerate(KINDS)}
CLASSES: dict[str, frozenset[str]] = {
    "pii": frozenset({"email", "phone", "card", "iban", "national_id", "ip"}),
    "secrets": frozenset({"api_key", "private_key"}),
    **{kind: frozenset({kind}) for kind in KINDS},
}


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    start: int
    end: int


# Every pattern begins with a character class and only then looks behind: Python's regex
# engine skips ahead to candidate first characters when a pattern starts with a class, and
# tries every position when it starts with a lookbehind (3-100x slower on a prompt).
_EMAIL_DOMAIN = re.compile(r"@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}(?![\w-])", re.ASCII)
_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_PHONE = re.compile(
    r"(?:\+(?<![\w+.-]\+)[0-9]{1,3}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{2,5}"
    r"|\((?<![\w+.-]\()[0-9]{1,4}\)[ .-]?[0-9]{2,5}"
    r"|[0-9](?<![\w+.-][0-9])[0-9]{1,4})"
    r"(?:[ .-][0-9]{2,5}){1,4}(?![\w]|[.-][0-9])"
    r"|\+(?<![\w+]\+)[0-9]{8,15}(?!\w)", re.ASCII)
_CARD = re.compile(r"[0-9](?<![0-9-][0-9])(?:[ -]?[0-9]){12,18}(?![0-9-])", re.ASCII)
_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z][0-9]{2}(?: ?[A-Z0-9]{4}){2,7}"
                   r"(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])", re.ASCII)
_SSN = re.compile(r"[0-9](?<![0-9-][0-9])[0-9]{2}-[0-9]{2}-[0-9]{4}(?![0-9-])", re.ASCII)
_NINO = re.compile(r"[A-CEGHJ-PR-TW-Z](?<![A-Za-z0-9][A-Z])[A-CEGHJ-NPR-TW-Z]"
                   r" ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D](?![A-Za-z0-9])", re.ASCII)
_IPV4 = re.compile(r"[0-9](?<![\w.][0-9])[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?![\w.]*[0-9])",
                   re.ASCII)
_IPV6 = re.compile(r"[0-9A-Fa-f:](?<![\w:][0-9A-Fa-f:])[0-9A-Fa-f:]{1,38}(?![\w:])",
                   re.ASCII)
_API_KEY = re.compile(  # no lookbehind first (see above): ``_api_keys`` checks the start
    r"(?:"
    r"sk-(?:proj-|ant-(?:api|admin)\d{2}-|svcacct-)?[A-Za-z0-9_-]{20,}"  # OpenAI, Anthropic
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"                                         # AWS access key id
    r"|AIza[0-9A-Za-z_-]{35}"                                             # Google API key
    r"|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}"     # GitHub
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"                                     # Slack
    r"|glpat-[A-Za-z0-9_-]{20,}"                                          # GitLab
    r"|(?:sk|rk)_live_[A-Za-z0-9]{16,}"                                   # Stripe
    r"|hf_[A-Za-z0-9]{30,}"                                               # Hugging Face
    r"|xai-[A-Za-z0-9]{40,}|gsk_[A-Za-z0-9]{40,}"                         # xAI, Groq
    r")(?![\w-])", re.ASCII)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
    r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----", re.ASCII)


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21,
    "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GI": 23, "GL": 18, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26,
    "IT": 27, "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27,
    "ME": 22, "MK": 19, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29,
    "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "TN": 24, "TR": 26, "UA": 29, "VG": 24,
}


def iban_valid(text: str) -> bool:
    iban = text.replace(" ", "")
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _emails(text: str) -> list[tuple[int, int]]:
    """E-mail addresses: found from their ``@domain`` (rare), then the local part is read
    backwards (at most 64 characters, starting with a letter or digit)."""
    spans = []
    for m in _EMAIL_DOMAIN.finditer(text):
        at = j = m.start()
        while j > 0 and text[j - 1] in _LOCAL and at - j < 64:
            j -= 1
        whole = j == 0 or text[j - 1] not in _LOCAL  # the run's own start is in reach
        for s in range(j, at):  # the leftmost start after a boundary (or a '%')
            if text[s].isascii() and text[s].isalnum() and (
                    (s == j and whole) or (s > 0 and text[s - 1] == "%")):
                spans.append((s, m.end()))
                break
    return spans


_KEY_STARTS = ("sk-", "sk_live_", "rk_live_", "AKIA", "ASIA", "AIza", "ghp_", "gho_", "ghu_",
               "ghs_", "ghr_", "github_pat_", "xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-",
               "xoxr-", "glpat-", "hf_", "xai-", "gsk_")
"""How every alternative of ``_API_KEY`` begins: ``str.find`` looks for these (a C loop over
the text per prefix) and the pattern is tried only where one starts, instead of being tried
at every position (its alternation has no single first character to skip ahead to)."""


def _api_keys(text: str) -> list[tuple[int, int]]:
    starts: set[int] = set()
    for prefix in _KEY_STARTS:
        i = text.find(prefix)
        while i != -1:
            starts.add(i)
            i = text.find(prefix, i + 1)
    spans = []
    at = 0
    for start in sorted(starts):
        if start < at:
            continue
        m = _API_KEY.match(text, start)
        if m is None:
            continue
        before = text[start - 1] if start else ""
        if before and (before.isascii() and (before.isalnum() or before in "_-")):
            continue  # inside a word
        spans.append((start, m.end()))
        at = m.end()
    return spans


def _ipv4(text: str) -> bool:
    return all(len(o) == 1 or (o[0] != "0" and int(o) <= 255) for o in text.split("."))


def _ssn(text: str) -> bool:
    area, group, serial = text.split("-")
    return area not in ("000", "666") and area[0] != "9" and group != "00" \
        and serial != "0000"


def _nino(text: str) -> bool:
    return text[:2] not in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ")


def _ipv6(text: str) -> bool:
    if text.count(":") < 2 or not any(c.isdigit() or c in "abcdefABCDEF" for c in text):
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _phone(text: str) -> bool:
    digits = sum(c.isdigit() for c in text)
    # a bare run of digits is an id, not a phone number; grouped or international it is one
    return 9 <= digits <= 15 and (text.startswith(("+", "(")) or not text.isdigit())


def _card(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 13 <= len(digits) <= 19 and luhn(digits)


_BEFORE, _AFTER = 8, 48
"""How far a number-shaped value reaches before its first digit (``+``, ``(``, an IBAN's or a
NINO's letters: at most 3) and after its last one (an IBAN's letter groups: under 40)."""
_DIGIT_CLUSTER = re.compile(rf"[0-9](?:[^0-9]{{0,{_BEFORE + _AFTER}}}[0-9])*", re.ASCII)
"""Digits no further apart than a window's reach: one match per window."""


def _windows(text: str) -> list[tuple[int, int]]:
    """The one prefilter pass of the number-shaped detectors (iban, card, national_id, IPv4,
    phone): the stretches of text around digits. Their patterns then run on these only
    (``finditer(text, start, end)``: lookbehinds still see before ``start``; ``end`` falls at
    least ``_AFTER`` characters after any digit, past where a match could end)."""
    n = len(text)
    return [(max(0, m.start() - _BEFORE), min(n, m.end() + _AFTER))
            for m in _DIGIT_CLUSTER.finditer(text)]


# Each detector: kind, pattern, confirming check, and a cheap precondition on the whole text
# (a substring the format must contain): most prompts skip most patterns. Patterns of
# number-shaped values (``numeric``) run only in the windows around digits.
Check = Callable[[str], bool]


def _always(text: str) -> bool:
    return True


_DETECTORS: tuple[tuple[str, re.Pattern[str], Check | None, Check, bool], ...] = (
    ("private_key", _PRIVATE_KEY, None, lambda t: "PRIVATE KEY-----" in t, False),
    ("api_key", _API_KEY, None, _always, False),
    ("email", _EMAIL_DOMAIN, None, lambda t: "@" in t, False),
    ("iban", _IBAN, iban_valid, _always, True),
    ("card", _CARD, _card, _always, True),
    ("national_id", _SSN, _ssn, lambda t: "-" in t, True),
    ("national_id", _NINO, _nino, _always, True),
    ("ip", _IPV4, _ipv4, lambda t: "." in t, True),
    ("ip", _IPV6, _ipv6, lambda t: "::" in t or t.count(":") >= 3, False),
    ("phone", _PHONE, _phone, _always, True),
)


def detect(text: str, kinds: Iterable[str] | None = None) -> list[Finding]:
    """Findings in ``text``, in order, none overlapping; only ``kinds`` when given."""
    wanted = None if kinds is None else frozenset(kinds)
    found: list[Finding] = []
    windows: list[tuple[int, int]] | None = None
    for kind, pattern, check, possible, numeric in _DETECTORS:
        if wanted is not None and kind not in wanted:
            continue
        if not possible(text):
            continue
        if pattern is _EMAIL_DOMAIN or pattern is _API_KEY:
            spans = _emails(text) if pattern is _EMAIL_DOMAIN else _api_keys(text)
            found.extend(Finding(kind, a, b) for a, b in spans)
            continue
        if numeric:
            if windows is None:
                windows = _windows(text)
            ranges = windows
        else:
            ranges = [(0, len(text))]
        for start, end in ranges:
            for m in pattern.finditer(text, start, end):
                if check is None or check(m.group()):
                    found.append(Finding(kind, m.start(), m.end()))
    return resolve(found)


def resolve(found: list[Finding]) -> list[Finding]:
    """``found`` in order of position, the most specific of any that overlap kept."""
    if len(found) < 2:
        return found
    found.sort(key=lambda f: (ORDER[f.kind], f.start))
    kept: list[Finding] = []
    for f in found:  # most specific first: a later kind never overlaps an earlier one
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    kept.sort(key=lambda f: f.start)
    return kept


def kinds_of(classes: Iterable[str]) -> frozenset[str]:
    """The detector kinds a policy's data classes name; unknown names raise KeyError."""
    out: frozenset[str] = frozenset()
    for name in classes:
        out |= CLASSES[name]
    return out
