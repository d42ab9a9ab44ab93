"""Times in queries: '7d', '24h', '30m', '90s' ago, an ISO date or datetime, or Unix seconds."""

from __future__ import annotations

import calendar
import re
import time
from datetime import UTC, datetime

_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, now: float | None = None) -> float:
    now = time.time() if now is None else now
    text = text.strip()
    ago = _AGO.match(text)
    if ago:
        return now - float(ago.group(1)) * _UNIT_S[ago.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a time: write 7d, 24h, 2026-05-01 or Unix "
                         "seconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return float(calendar.timegm(parsed.utctimetuple())) + parsed.microsecond / 1e6
