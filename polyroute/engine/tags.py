"""Tag routing: a request names tags (``x-polyroute-tags: eu,batch``, or ``polyroute_tags`` in
its ``metadata``) and only the deployments carrying every one of them may serve it.

A deployment carries a tag ``t`` when one of its ``tags`` is named ``t`` or has the value
``t`` (``region: eu`` carries ``eu`` and ``region``), or when ``t`` is ``name=value`` of one
of them (``region=eu``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from polyroute.config import Deployment
from polyroute.errors import InvalidRequest
from polyroute.model.chat import ChatRequest

MAX_TAGS = 16
_MAX_TAG_CHARS = 64


def carrying(deployments: Sequence[Deployment], tags: frozenset[str]) -> list[Deployment]:
    return [d for d in deployments if all(_carries(d, t) for t in tags)]


def _carries(d: Deployment, tag: str) -> bool:
    name, sep, value = tag.partition("=")
    if sep:
        return d.tags.get(name) == value
    return tag in d.tags or tag in d.tags.values()


def parse_tags(text: str | Iterable[str], where: str) -> frozenset[str]:
    """The tags of a comma-separated header or a metadata list; a clear 400 when malformed."""
    items = text.split(",") if isinstance(text, str) else list(text)
    tags = frozenset(t.strip() for t in items if isinstance(t, str) and t.strip())
    if len(tags) > MAX_TAGS or any(len(t) > _MAX_TAG_CHARS for t in tags) or (
            not isinstance(text, str) and not all(isinstance(t, str) for t in items)):
        raise InvalidRequest(f"{where} must be at most {MAX_TAGS} comma-separated tags of at "
                             f"most {_MAX_TAG_CHARS} characters each.", param=where)
    return tags


def metadata_tags(request: ChatRequest | None) -> frozenset[str]:
    """``metadata.polyroute_tags`` of an OpenAI-dialect request ("eu,batch": metadata values
    are strings there), read from the client's own fields; empty when absent."""
    if request is None or request.passthrough is None:
        return frozenset()
    raw = request.passthrough.get("metadata")
    if raw is None or b"polyroute_tags" not in bytes(raw):
        return frozenset()
    try:
        metadata = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return frozenset()
    value = metadata.get("polyroute_tags") if isinstance(metadata, dict) else None
    if value is None:
        return frozenset()
    if not isinstance(value, str | list):
        raise InvalidRequest("metadata.polyroute_tags must be a comma-separated string.",
                             param="metadata.polyroute_tags")
    return parse_tags(value, "metadata.polyroute_tags")
