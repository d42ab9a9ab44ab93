"""Per-application state shared by the handlers (kept on the app, never module-global)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from polyroute.sim.fault_rules import FaultRuleBook
from polyroute.sim.ids import IdSource
from polyroute.sim.prompt_cache import PromptCache
from polyroute.sim.settings import SimSettings
from polyroute.sim.stats import SimStats


@dataclass
class SimState:
    settings: SimSettings
    rules: FaultRuleBook
    stats: SimStats
    ids: IdSource
    prompt_cache: PromptCache

    @classmethod
    def from_settings(cls, settings: SimSettings) -> SimState:
        return cls(
            settings=settings,
            rules=FaultRuleBook(settings.rules, settings.seed),
            stats=SimStats(),
            ids=IdSource(settings.seed),
            prompt_cache=PromptCache(),
        )


SIM_STATE = web.AppKey("polyroute_sim_state", SimState)


def get_state(request: web.Request) -> SimState:
    return request.app[SIM_STATE]
