"""Response headers OpenAI puts on every API answer."""

from __future__ import annotations

from polyroute.sim.state import SimState


def openai_headers(state: SimState, model: str) -> dict[str, str]:
    return {
        "x-request-id": state.ids.request_id(),
        "openai-organization": "org-polyroute-sim",
        "openai-processing-ms": "1",
        "openai-version": "2020-10-01",
        "openai-model": model,
    }
