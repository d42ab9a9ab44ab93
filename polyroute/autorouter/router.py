"""The decision the engine calls: ``AutoRouter.load()`` once, then ``choose()`` per request.

``choose`` is pure (no I/O, no state changed) and takes tens of microseconds; the artifact is
read from disk only when ``load`` is called, so importing polyroute costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from polyroute.autorouter.artifact import RouterArtifact
from polyroute.autorouter.costs import DEFAULT_OUTPUT_TOKENS, estimate_tokens
from polyroute.autorouter.decision import Candidate, Decision, Policy
from polyroute.autorouter.defaults import DEFAULT_ARTIFACT
from polyroute.autorouter.predictor import QualityPredictor
from polyroute.autorouter.profiles import resolve_profile


class AutoRouter:
    def __init__(self, artifact: RouterArtifact) -> None:
        self.predictor = QualityPredictor(artifact)
        self._heads = artifact.head_index()

    @classmethod
    def load(cls, path: Path | str | None = None) -> AutoRouter:
        """The router of an artifact file, read now. The config loader calls this once when a
        group routes auto; the compiled config carries the router to the engine."""
        return cls(RouterArtifact.load(Path(path or DEFAULT_ARTIFACT)))

    @property
    def profiles(self) -> tuple[str, ...]:
        return self.predictor.heads

    def validate(self, candidates: Sequence[Candidate]) -> None:
        """Raise :class:`~polyroute.autorouter.profiles.UnknownProfile` for a bad mapping;
        call it when the config is loaded, not per request."""
        for candidate in candidates:
            resolve_profile(candidate.profile or candidate.name, self._heads)

    def choose(self, prompt: str, candidates: Sequence[Candidate], policy: Policy,
               expected_output_tokens: int | None = None) -> Decision:
        if not candidates:
            raise ValueError("choose() needs at least one candidate")
        probabilities = self.predictor.probabilities(prompt)
        input_tokens = estimate_tokens(prompt)
        output_tokens = (DEFAULT_OUTPUT_TOKENS if expected_output_tokens is None
                         else expected_output_tokens)
        scores: dict[str, float] = {}
        costs: dict[str, float] = {}
        for c in candidates:
            head = resolve_profile(c.profile or c.name, self._heads)
            scores[c.name] = float(probabilities[head])
            costs[c.name] = (input_tokens * c.price_in_per_1m
                             + output_tokens * c.price_out_per_1m) / 1e6
        ranked = rank(scores, costs, policy)
        return Decision(chosen=ranked[0], ranked=ranked, scores=scores, costs=costs,
                        policy=policy.describe())


def rank(scores: dict[str, float], costs: dict[str, float], policy: Policy) -> tuple[str, ...]:
    """Order candidates by the policy; ties go to the cheaper, then to the name."""
    names = list(scores)
    ceiling = policy.cost_ceiling
    within = [n for n in names if ceiling is None or costs[n] <= ceiling]
    over = sorted((n for n in names if n not in within), key=lambda n: (costs[n], n))
    floor = policy.quality_floor
    wtp = policy.effective_willingness_to_pay
    if floor is not None:
        def key(n: str) -> tuple[float, ...]:
            ok = scores[n] >= floor
            return (0.0, costs[n], -scores[n]) if ok else (1.0, -scores[n], costs[n])
    elif wtp is not None and wtp > 0:
        def key(n: str) -> tuple[float, ...]:
            return (costs[n] / wtp - scores[n], costs[n])
    elif wtp is not None:  # quality is worth nothing: the cheapest
        def key(n: str) -> tuple[float, ...]:
            return (costs[n], -scores[n])
    else:
        def key(n: str) -> tuple[float, ...]:
            return (-scores[n], costs[n])
    return tuple(sorted(within, key=lambda n: (*key(n), n))) + tuple(over)
