"""polyroute's auto-router: send each request to the cheapest model that will answer it well.

Runtime API (numpy only)::

    router = AutoRouter.load()                      # reads data/router.npz, once
    decision = router.choose(prompt_text(request.messages), candidates, Policy(...))
    decision.ranked                                  # try in this order; fail over down it

Training and evaluation (``python -m polyroute.autorouter train|eval``) also need scipy.

``AutoRouter`` is imported on first use (PEP 562): it brings numpy (~6 MB of a worker's
private memory), and the engine imports this package for its types whether or not any group
routes ``auto``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from polyroute.autorouter.cli import add_cli
from polyroute.autorouter.decision import (
    DEFAULT_WILLINGNESS_TO_PAY,
    Candidate,
    Decision,
    Policy,
)
from polyroute.autorouter.defaults import DEFAULT_ARTIFACT
from polyroute.autorouter.profiles import TIER_ALIASES, UnknownProfile
from polyroute.autorouter.text import prompt_text

if TYPE_CHECKING:
    from polyroute.autorouter.router import AutoRouter


def __getattr__(name: str) -> Any:
    if name == "AutoRouter":
        return importlib.import_module("polyroute.autorouter.router").AutoRouter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_ARTIFACT",
    "DEFAULT_WILLINGNESS_TO_PAY",
    "TIER_ALIASES",
    "AutoRouter",
    "Candidate",
    "Decision",
    "Policy",
    "UnknownProfile",
    "add_cli",
    "prompt_text",
]
