"""What a protocol can carry of a chat request, declared as data in its spec
(:attr:`~polyroute.adapters.spec.ProtocolSpec.support`), and the one check every translation
runs against it before building a body.

A request decoded from OpenAI's dialect keeps its top-level fields (``passthrough``): each must
be one the protocol maps, or hold a value that asks for nothing (``null``, ``false``, ``0``,
``{}``, ``[]``, ``n: 1``, ``service_tier: "auto"``), or be listed in the provider's
``quirks.drop_params``. A request built by another dialect's surface has no passthrough: only
its typed fields can be set, and those the protocol cannot carry are named in ``typed``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from polyroute.adapters.rejections import unsupported
from polyroute.model.chat import ChatRequest

_NEUTRAL_VALUES = frozenset({b"null", b"false", b"0", b"0.0", b"{}", b"[]"})
_NEUTRAL_BY_NAME: Mapping[str, frozenset[bytes]] = {
    "n": frozenset({b"1"}), "service_tier": frozenset({b'"auto"', b'"default"'})}


@dataclass(frozen=True, slots=True)
class Support:
    vendor: str
    """As the refusal names it: "The parameter 'seed' is not supported by <vendor> …"."""
    mapped: frozenset[str]
    """The request fields (OpenAI's names) the protocol's translation maps."""
    why: Mapping[str, str] = field(default_factory=dict, hash=False)
    """The reason given for refusing a field, where there is more to say than its name."""
    typed: tuple[str, ...] = ()
    """Typed ``ChatRequest`` fields with no mapping: refused when set to anything but their
    neutral value (None, 0, and 1 for ``n``)."""
    serial_tool_calls: bool = True
    """False: it cannot be told to make one call at a time (``parallel_tool_calls: false``
    is refused)."""


def check_supported(request: ChatRequest, support: Support, drop: frozenset[str],
                    deployment: str) -> None:
    """Raise ``UpstreamRejected`` (400, naming the field and how to drop it) for the first
    field of ``request`` the protocol cannot carry and the provider does not drop."""
    if (not support.serial_tool_calls and request.parallel_tool_calls is False
            and "parallel_tool_calls" not in drop):
        _refuse(support, "parallel_tool_calls", deployment)
    sent = request.passthrough
    if sent is not None:
        for name, raw in sent.items():
            if name in support.mapped or name in drop:
                continue
            value = bytes(raw).strip()
            if value in _NEUTRAL_VALUES or value in _NEUTRAL_BY_NAME.get(name, ()):
                continue
            _refuse(support, name, deployment)
        return
    for name in support.typed:
        value = getattr(request, name)
        if value is not None and value != 0 and not (name == "n" and value == 1) \
                and name not in drop:
            _refuse(support, name, deployment)


def _refuse(support: Support, name: str, deployment: str) -> None:
    raise unsupported(support.vendor, name, deployment, support.why.get(name, ""))
