"""The model families a Bedrock batch inference job can run, told by the model id: each
family's InvokeModel record body and answer (:mod:`.invoke`). A model of no family here is
refused before anything is uploaded; adding a family is a row, not a branch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from polyroute.adapters.bedrock_converse import invoke
from polyroute.model.chat import ChatRequest, ChatResponse
from polyroute.model.upstream import Deployment


@dataclass(frozen=True, slots=True)
class BatchFamily:
    name: str
    record: Callable[[ChatRequest, Deployment], dict[str, Any]]
    """A chat request as the family's InvokeModel body (a record's ``modelInput``)."""
    answer: Callable[[dict[str, Any], str, str, int], ChatResponse]
    """A record's ``modelOutput`` (with its record id, the deployment's name and the time)
    as a chat answer; UpstreamProtocolError when it is not the family's shape."""


ANTHROPIC = BatchFamily("Anthropic Claude", invoke.anthropic_body, invoke.anthropic_answer)
NOVA = BatchFamily("Amazon Nova", invoke.nova_body, invoke.nova_answer)
LLAMA3 = BatchFamily("Meta Llama 3", invoke.llama_body, invoke.llama_answer)

FAMILIES: tuple[tuple[str, BatchFamily], ...] = (
    ("anthropic.claude", ANTHROPIC),
    ("amazon.nova-micro", NOVA),
    ("amazon.nova-lite", NOVA),
    ("amazon.nova-pro", NOVA),
    ("amazon.nova-premier", NOVA),
    ("amazon.nova-2-lite", NOVA),
    ("meta.llama3", LLAMA3),  # 3, 3.1, 3.2 and 3.3 share the chat template
)
"""Model id prefix → family. Nova's image, video and speech models (canvas, reel, sonic) and
Llama 4 (another chat template) are not text families here."""
_GEOGRAPHIES = frozenset({"us", "eu", "apac", "global", "us-gov", "jp", "au", "ca"})
"""The prefixes of cross-region inference profiles (``us.amazon.nova-lite-v1:0``)."""


def family_of(model_id: str) -> BatchFamily | None:
    """The family of a model id, an inference profile's id or either's ARN; None if unknown."""
    name = model_id.rpartition("/")[2]
    geography, dot, rest = name.partition(".")
    if dot and geography in _GEOGRAPHIES:
        name = rest
    return next((family for prefix, family in FAMILIES if name.startswith(prefix)), None)


def known_families() -> str:
    """The families and their id prefixes, for an error message."""
    prefixes: dict[str, list[str]] = {}
    for prefix, family in FAMILIES:
        prefixes.setdefault(family.name, []).append(f"{prefix}…")
    return "; ".join(f"{name} ({', '.join(ids)})" for name, ids in prefixes.items())


def family_named(name: object) -> BatchFamily | None:
    return next((family for _, family in FAMILIES if family.name == name), None)
