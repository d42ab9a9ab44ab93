"""What a wire protocol tells the rest of the gateway about itself, before any of its code is
imported: its name in config files, how its vendors expect the key, its own provider options
and how it continues a final assistant message. Each adapter package exports one
``SPEC`` (``<package>/spec.py``); :mod:`.registry` lists them, one line each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from polyroute.adapters.support import Support


class OptionError(Exception):
    """An option's value cannot work: the config loader names the file and the key."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.key = key
        self.problem = problem
        self.fix = fix


Finish = Callable[[Any, str], Any]
"""(the options as written, the provider's base_url) → the options the adapter reads, with
what the URL implies filled in; raises :class:`OptionError`."""


def _as_written(options: Any, base_url: str) -> Any:
    return options


ModelCheck = Callable[[str, str], str | None]
"""(a media endpoint the protocol lists, a deployment's model id) → why that model cannot
serve it (routing skips the deployment, saying so), or None."""


def _every_model(endpoint: str, model: str) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    name: str
    """The value of a provider's ``protocol:``."""
    adapter: str
    """``module:Class`` of its adapter, imported only when a provider uses the protocol."""
    auth: str = "bearer"
    """The auth scheme its vendors expect the key in when a provider names none:
    bearer, api-key, x-api-key or x-goog-api-key."""
    options: type[msgspec.Struct] | None = None
    """The struct a provider's ``options:`` is validated against (unknown keys rejected);
    None: the protocol takes no options."""
    finish: Finish = _as_written
    continuation: str = "none"
    """How its API continues a final assistant message by itself ('assistant_prefill'), when
    a provider's quirks name no other way."""
    endpoints: frozenset[str] = frozenset()
    """The media endpoints its servers answer (``model/media.py``'s names: images, audio,
    rerank, moderations); routing skips its deployments for any other."""
    serves: ModelCheck = _every_model
    """Which of its models serve each of those endpoints, where its API tells them apart
    (Gemini: only a TTS model speaks); by default, every model."""
    support: Support | None = None
    """What of a chat request it can carry (checked by :func:`.support.check_supported`
    before a body is built); None: it carries everything a client sends (OpenAI's)."""
