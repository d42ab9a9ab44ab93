"""Per-application state shared by the handlers (kept on the app, never module-global)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from polyroute.sim.batches_store import BatchStore
from polyroute.sim.fault_rules import FaultRuleBook
from polyroute.sim.ids import IdSource
from polyroute.sim.prompt_cache import PromptCache
from polyroute.sim.settings import SimSettings
from polyroute.sim.stats import SimStats

if TYPE_CHECKING:
    from polyroute.sim.quota import RequestQuota


@dataclass
class SimState:
    settings: SimSettings
    rules: FaultRuleBook
    stats: SimStats
    ids: IdSource
    prompt_cache: PromptCache
    quota: RequestQuota | None = None
    batches: BatchStore = field(default_factory=BatchStore)
    """Files and batches (:mod:`.batches`)."""

    @classmethod
    def from_settings(cls, settings: SimSettings) -> SimState:
        return cls(
            settings=settings,
            rules=FaultRuleBook(settings.rules, settings.seed),
            stats=SimStats(),
            ids=IdSource(settings.seed),
            prompt_cache=PromptCache(),
            quota=_quota(settings.rate_limit_rpm),
        )


SIM_STATE = web.AppKey("polyroute_sim_state", SimState)


def get_state(request: web.Request) -> SimState:
    return request.app[SIM_STATE]


def _quota(rpm: int) -> RequestQuota | None:
    from polyroute.sim.quota import RequestQuota

    return RequestQuota(rpm) if rpm > 0 else None
