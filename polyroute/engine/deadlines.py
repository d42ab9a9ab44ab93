"""Stream deadlines that fit the deployment: learnt from the gaps each upstream really leaves.

A fixed stall deadline must allow for the slowest healthy upstream, so it is far too long for a
fast one: 30 s of silence from a model that streams a chunk every 20 ms is a dead connection,
not a thought. Per upstream (provider + model), polyroute keeps the last inter-chunk gaps and
first-token times of its streams and uses ``factor`` × their 99th percentile as the deadline,
never below a floor and never above the configured ``stall_s`` / ``ttft_s`` (which stay the
deadlines until enough has been seen, and are the ceiling always).

First-token times grow with the prompt (prefill), so they are kept per *prompt unit* (1 + input
tokens / 4096) and scaled back up by the request's own units.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from polyroute.config.compiled import Timeouts
from polyroute.model.chat import ChatRequest

_SAMPLES = 512
_REFRESH_EVERY = 32  # new samples between two percentile computations (a sort of ≤ 512)
_MIN_GAPS = 50
_MIN_FIRST_TOKENS = 20
_TOKENS_PER_UNIT = 4096
_PERCENTILE = 0.99


def prompt_units(input_tokens: int) -> float:
    return 1.0 + input_tokens / _TOKENS_PER_UNIT


def asks_for_reasoning(request: ChatRequest) -> bool:
    """A request that sets how long the model thinks (``reasoning_effort``, ``thinking``): its
    first token comes when the request says, not at the deployment's pace, so it keeps the
    configured first-token deadline and is not learnt from."""
    thinking = request.thinking
    return request.reasoning_effort not in (None, "none", "minimal") or (
        thinking is not None and thinking.get("type") not in (None, "disabled"))


@dataclass(slots=True)
class _Series:
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))
    fresh: int = 0
    p99: float | None = None

    def add(self, value: float, minimum: int) -> None:
        self.samples.append(value)
        self.fresh += 1
        if len(self.samples) >= minimum and (self.p99 is None or self.fresh >= _REFRESH_EVERY):
            ordered = sorted(self.samples)
            self.p99 = ordered[int(_PERCENTILE * (len(ordered) - 1))]
            self.fresh = 0


class Pace:
    """What each upstream's streams have looked like lately, and the deadlines that follow.
    One per gateway; only touched from its event loop."""

    def __init__(self) -> None:
        self._gaps: dict[str, _Series] = {}
        self._first: dict[str, _Series] = {}

    def gap(self, upstream: str, seconds: float) -> None:
        """The wait for one batch of an answer that had started (not after its finish)."""
        _series(self._gaps, upstream).add(seconds, _MIN_GAPS)

    def first_token(self, upstream: str, seconds: float, units: float) -> None:
        _series(self._first, upstream).add(seconds / units, _MIN_FIRST_TOKENS)

    def stall_s(self, upstream: str, timeouts: Timeouts) -> float:
        series = self._gaps.get(upstream)
        if not timeouts.adaptive or series is None or series.p99 is None:
            return timeouts.stall_s
        return _clamp(timeouts.adaptive_factor * series.p99, timeouts.stall_floor_s,
                      timeouts.stall_s)

    def ttft_s(self, upstream: str, timeouts: Timeouts, units: float) -> float:
        series = self._first.get(upstream)
        if not timeouts.adaptive or series is None or series.p99 is None:
            return timeouts.ttft_s
        return _clamp(timeouts.adaptive_factor * series.p99 * units, timeouts.ttft_floor_s,
                      timeouts.ttft_s)


def _series(table: dict[str, _Series], upstream: str) -> _Series:
    """Not ``setdefault``: that would build a series (and its deque) on every sample."""
    series = table.get(upstream)
    if series is None:
        series = table[upstream] = _Series()
    return series


def _clamp(value: float, floor: float, ceiling: float) -> float:
    return max(min(floor, ceiling), min(value, ceiling))
