"""What a wire protocol tells the rest of the gateway about itself, before any of its code is
imported: its name in config files, how its vendors expect the key, its own provider options
and how it continues a final assistant message. Each adapter package exports one
``SPEC`` (``<package>/spec.py``); :mod:`.registry` lists them, one line each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from polyroute.adapters.support import Support
from polyroute.model.media import MediaRequest
from polyroute.model.upstream import Deployment


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


Unservable = Literal["unsupported_endpoint", "unsupported_parameter", "unsupported_value",
                     "file_too_large"]
"""Why a deployment was skipped for a media request: its outcome in ``x-polyroute-attempts``
and, when no deployment is left, the 400's code (``engine/attempts.py`` ``_NEVER_TRIED``
counts them as never tried)."""


@dataclass(frozen=True, slots=True)
class Unserved:
    """Why one deployment cannot serve a media request, known before anything is sent: its
    model gives another kind of output (``unsupported_endpoint``), or the request asks for
    an option its protocol cannot carry (a field, a value, a file too large for it)."""

    why: str
    """One sentence, without the deployment's name (the 400 puts it in front)."""
    param: str = "model"
    code: Unservable = "unsupported_endpoint"

    @classmethod
    def parameter(cls, vendor: str, param: str, why: str = "") -> Unserved:
        """A field the vendor's API has no place for."""
        detail = f": {why}" if why else ""
        return cls(f"the parameter '{param}' is not supported by {vendor}{detail} (the "
                   "provider's quirks.drop_params may drop it)", param, "unsupported_parameter")


MediaCheck = Callable[[MediaRequest, Deployment], Unserved | None]
"""(a request for a media endpoint the protocol lists, a deployment of the protocol) → why
that deployment cannot serve it (routing skips it, saying so), or None. It sees the
provider's ``quirks.drop_params``: a field dropped there is no reason to skip."""


def _serves_all(request: MediaRequest, deployment: Deployment) -> Unserved | None:
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
    serves: MediaCheck = _serves_all
    """Which of its deployments can serve a request for one of those endpoints, where its
    API tells its models apart (Gemini: only a TTS model speaks) or cannot carry every
    option OpenAI's request asks (Gemini: no MP3, no mask); by default, every one."""
    support: Support | None = None
    """What of a chat request it can carry (checked by :func:`.support.check_supported`
    before a body is built); None: it carries everything a client sends (OpenAI's)."""
