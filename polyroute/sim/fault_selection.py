"""Which fault, if any, a request gets: header, then model suffix, then server rules."""

from __future__ import annotations

from aiohttp import web

from polyroute.sim import errors
from polyroute.sim.faults import Fault, FaultSpecError, parse_fault_spec, split_model_fault
from polyroute.sim.state import SimState

FAULT_HEADER = "x-sim-fault"
# Lets a test opt a single request out of server-side rules.
NO_FAULT = "none"


def select_fault(
    request: web.Request, state: SimState, requested_model: str
) -> tuple[str, Fault | None]:
    """Return the model id to echo back (fault suffix removed) and the fault to inject."""
    try:
        model, suffix_fault = split_model_fault(requested_model)
        header = request.headers.get(FAULT_HEADER, "").strip()
        if header:
            if header.lower() == NO_FAULT:
                return model, None
            return model, parse_fault_spec(header)
    except FaultSpecError as exc:
        raise errors.bad_fault(str(exc)) from None
    if suffix_fault is not None:
        return model, suffix_fault
    return model, state.rules.pick(model)
