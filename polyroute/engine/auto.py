"""'auto' groups: the auto-router orders a group's deployments per request by predicted
quality and price; the attempt loop then fails over down that order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from polyroute.autorouter import Candidate, Decision, Policy, prompt_text
from polyroute.config import Deployment, GatewayConfig, ModelGroup
from polyroute.model.chat import ChatRequest

if TYPE_CHECKING:
    from polyroute.autorouter import AutoRouter

EXPECTED_OUTPUT_CAP = 4096
"""A request's max_tokens is a ceiling, not a forecast: cap what the cost estimate assumes."""


def _load_router() -> AutoRouter:
    # numpy comes with the router: imported only when a group routes auto
    from polyroute.autorouter import AutoRouter

    return AutoRouter.load()


class AutoRoutes:
    def __init__(self, config: GatewayConfig, router: AutoRouter | None = None) -> None:
        auto_groups = [g for g in config.groups.values() if g.routing == "auto"]
        # The router the config was validated against; a config built in code has none yet.
        self._router = router or config.auto_router or (
            _load_router() if auto_groups else None)
        self._candidates: dict[str, list[Candidate]] = {}
        self._policies: dict[str, Policy] = {}
        for group in auto_groups:
            self._candidates[group.name] = [
                Candidate(d.name, d.price.input_per_1m if d.price else 0.0,
                          d.price.output_per_1m if d.price else 0.0, d.profile or d.model)
                for d in group.deployments]
            knobs = group.auto
            self._policies[group.name] = Policy(
                knobs.willingness_to_pay, knobs.quality_floor, knobs.cost_ceiling
            ) if knobs else Policy()

    def order(
        self, group: ModelGroup, request: ChatRequest | None
    ) -> tuple[list[Deployment], Decision | None]:
        """Deployments best-first. Without a prompt (embeddings) the cheapest go first."""
        if self._router is None or request is None:
            return _cheapest_first(group.deployments), None
        limit = request.max_completion_tokens or request.max_tokens
        decision = self._router.choose(
            prompt_text(request.messages), self._candidates[group.name],
            self._policies[group.name],
            expected_output_tokens=min(limit, EXPECTED_OUTPUT_CAP) if limit else None)
        by_name = {d.name: d for d in group.deployments}
        return [by_name[name] for name in decision.ranked], decision


def _cheapest_first(deployments: Sequence[Deployment]) -> list[Deployment]:
    return sorted(deployments, key=lambda d: (d.price.output_per_1m if d.price else 0.0))
