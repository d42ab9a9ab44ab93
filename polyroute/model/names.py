"""Bounds on the model names a client chooses (issue 10, item 8).

A name reaches the router, error messages, metric labels, the ledger and an upstream's URL or
body, so it is checked once, at decode: at most ``MAX_MODEL_NAME`` characters and no control
character (a CR/LF would end a header line, a NUL is refused by PostgreSQL's text columns); a
request's own fallback list holds at most ``MAX_FALLBACK_MODELS`` names. 500,000 of them used
to hold the event loop for seconds.
"""

from __future__ import annotations

import re
from typing import Annotated

from msgspec import Meta

MAX_MODEL_NAME = 256
MAX_FALLBACK_MODELS = 16
_CONTROL = r"\x00-\x1f\x7f"

ModelName = Annotated[str, Meta(max_length=MAX_MODEL_NAME, pattern=rf"^[^{_CONTROL}]*$")]
FallbackModels = Annotated[list[ModelName], Meta(max_length=MAX_FALLBACK_MODELS)]

_has_control = re.compile(f"[{_CONTROL}]").search


def name_problem(name: str) -> str | None:
    """Why ``name`` is not acceptable as a model name, or None (for names that did not come
    through a decoder with the annotations above)."""
    if len(name) > MAX_MODEL_NAME:
        return f"a model name has at most {MAX_MODEL_NAME} characters"
    if _has_control(name):
        return "a model name may not contain control characters (CR, LF, NUL, …)"
    return None
