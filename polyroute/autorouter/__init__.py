"""polyroute's auto-router: send each request to the cheapest model that will answer it well.

Runtime API (numpy only)::

    router = AutoRouter.load()                      # reads data/router.npz, once
    decision = router.choose(prompt_text(request.messages), candidates, Policy(...))
    decision.ranked                                  # try in this order; fail over down it

Training and evaluation (``python -m polyroute.autorouter train|eval``) also need scipy.
"""

from polyroute.autorouter.cli import add_cli
from polyroute.autorouter.decision import (
    DEFAULT_WILLINGNESS_TO_PAY,
    Candidate,
    Decision,
    Policy,
)
from polyroute.autorouter.profiles import TIER_ALIASES, UnknownProfile
from polyroute.autorouter.router import DEFAULT_ARTIFACT, AutoRouter
from polyroute.autorouter.text import prompt_text

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
