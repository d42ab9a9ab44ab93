"""Server-side fault rules: which requests get which fault, how often."""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Iterable
from dataclasses import dataclass

from polyroute.sim.faults import Fault, FaultSpecError, make_fault
from polyroute.sim.settings import FaultRule


@dataclass
class _ActiveRule:
    rule: FaultRule
    fault: Fault
    remaining: int | None


def validate_rule(rule: FaultRule) -> Fault:
    if rule.times is not None and rule.times < 0:
        raise FaultSpecError(f"rule for fault {rule.fault!r}: times must be >= 0 or null")
    if not 0.0 <= rule.probability <= 1.0:
        raise FaultSpecError(f"rule for fault {rule.fault!r}: probability must be in [0, 1]")
    return make_fault(rule.fault, rule.params)


class FaultRuleBook:
    """Ordered rules; the first one that matches, has uses left and wins its roll applies."""

    def __init__(self, rules: Iterable[FaultRule], seed: int) -> None:
        self._seed = seed
        self._random = random.Random(seed)
        self._rules: list[_ActiveRule] = []
        self.replace(rules)

    def replace(self, rules: Iterable[FaultRule]) -> None:
        # Validate everything first so a bad rule leaves the old set in place.
        active = [_ActiveRule(rule, validate_rule(rule), rule.times) for rule in rules]
        self._rules = active
        # Re-seeding makes "set rules, run N requests" reproducible in any order of tests.
        self._random = random.Random(self._seed)

    def clear(self) -> None:
        self._rules = []

    def pick(self, model: str) -> Fault | None:
        for active in self._rules:
            if active.remaining == 0:
                continue
            if not fnmatch.fnmatchcase(model, active.rule.model):
                continue
            if active.rule.probability < 1.0 and self._random.random() >= active.rule.probability:
                continue
            if active.remaining is not None:
                active.remaining -= 1
            return active.fault
        return None

    def snapshot(self) -> list[dict[str, object]]:
        return [
            {
                "model": active.rule.model,
                "fault": active.rule.fault,
                "params": dict(active.rule.params),
                "times": active.rule.times,
                "remaining": active.remaining,
                "probability": active.rule.probability,
            }
            for active in self._rules
        ]
