"""An OpenAI-protocol upstream that can misbehave on purpose, for tests and drills."""

from polyroute.sim.app import build_app
from polyroute.sim.faults import Fault, FaultName, FaultSpecError
from polyroute.sim.server import RunningSim, start_sim
from polyroute.sim.settings import FaultRule, SimSettings

__all__ = [
    "Fault",
    "FaultName",
    "FaultRule",
    "FaultSpecError",
    "RunningSim",
    "SimSettings",
    "build_app",
    "start_sim",
]
