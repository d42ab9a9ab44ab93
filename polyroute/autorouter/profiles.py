"""Placing a configured model relative to the models the router was trained on.

The configured models will not be the trained ones, so each configured model names a
*profile*: a trained model whose per-prompt strengths it is assumed to share (its head then
predicts for it), or a tier alias for one. The mapping is a judgement the operator makes from
public benchmarks; the router cannot check it. See docs/router.md, "Your models".
"""

from __future__ import annotations

from collections.abc import Mapping

from polyroute.autorouter.costs import canonical_model

# Tiers as the shipped data spans them: RouterBench's 11 models (2023–24) and RouteLLM's pair.
TIER_ALIASES: Mapping[str, str] = {
    "frontier": "gpt-4-1106-preview",
    "strong": "gpt-4-1106-preview",  # RouteLLM's strong model
    "mid": "mixtral-8x7b-instruct-v0.1",
    "weak": "mixtral-8x7b-instruct-v0.1",  # RouteLLM's weak model
    "small": "mistral-7b-chat",
}


class UnknownProfile(KeyError):
    def __init__(self, profile: str, known: list[str]) -> None:
        super().__init__(profile)
        self.profile = profile
        self.known = known

    def __str__(self) -> str:
        return (f"unknown router profile '{self.profile}': use a tier "
                f"({', '.join(sorted(TIER_ALIASES))}) or a trained model "
                f"({', '.join(self.known)})")


def resolve_profile(profile: str, heads: Mapping[str, int]) -> int:
    """The head index a profile names: a trained model in any spelling, else a tier alias
    (a trained model wins, so retraining on traffic with a model named "small" just works)."""
    index = heads.get(canonical_model(profile))
    if index is None:
        alias = TIER_ALIASES.get(profile.strip().lower())
        index = heads.get(alias) if alias is not None else None
    if index is None:
        raise UnknownProfile(profile, sorted(heads))
    return index
