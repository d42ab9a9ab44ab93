"""Data-governance policies: where a scope's requests may go, and what data may go there.

An organisation, a team and a key may each carry one (``governance`` in their settings); a
request must satisfy all of them. Deployments describe themselves with their ``vendor`` and
their config ``tags``: ``cloud`` and ``region`` are the tags of those names, and any other tag
(``pii-ok: "true"``) can be required or refused.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

DATA_CLASSES = ("pii", "secrets", "email", "phone", "card", "iban", "national_id", "ip",
                "api_key", "private_key")
"""The names ``data_classes`` accepts (``guardrails.detectors.CLASSES`` implements them)."""

Word = Annotated[str, Meta(min_length=1, max_length=128)]
Words = Annotated[list[Word], Meta(max_length=256)]


class DataClassRule(msgspec.Struct, kw_only=True, omit_defaults=True,
                    forbid_unknown_fields=True):
    """What to do with a prompt holding this class of data (``pii``, ``secrets``, or one
    kind: ``email``, ``phone``, ``card``, ``iban``, ``national_id``, ``ip``, ``api_key``,
    ``private_key``)."""

    allow_tags: Words = msgspec.field(default_factory=list)
    """Deployments carrying one of these tags (``pii-ok``, or ``tag=value``) may receive it:
    the request is routed only to them."""
    otherwise: Literal["refuse", "redact"] = "refuse"
    """When no allowed deployment serves the model: refuse the request, or replace each value
    with a placeholder and send it to the deployments the other rules allow."""
    restore: bool = True
    """After ``redact``: put the values back into the answer (the client sees them, the
    upstream never did)."""


class DataPolicy(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    vendors: Words | None = None
    """Only these vendors (unset: any)."""
    deny_vendors: Words = msgspec.field(default_factory=list)
    clouds: Words | None = None
    """Only deployments whose ``cloud`` tag is one of these."""
    deny_clouds: Words = msgspec.field(default_factory=list)
    regions: Words | None = None
    """Only deployments whose ``region`` tag is one of these."""
    deny_regions: Words = msgspec.field(default_factory=list)
    require_tags: Words = msgspec.field(default_factory=list)
    """Every deployment used must carry each of these tags (``name`` or ``name=value``)."""
    deny_tags: Words = msgspec.field(default_factory=list)
    data_classes: Annotated[dict[Word, DataClassRule], Meta(max_length=16)] = msgspec.field(
        default_factory=dict)
    deny_terms: Words = msgspec.field(default_factory=list)
    """Guardrail: a prompt containing one of these (case-insensitive) is refused."""
    max_prompt_chars: Annotated[int, Meta(gt=0, le=100_000_000)] | None = None
    """Guardrail: a prompt whose message text is longer than this is refused."""
    guardrails: Words = msgspec.field(default_factory=list)
    """Guardrails of the config (``guardrails:``) to run on this scope's requests and answers
    besides those that run on every request (a guardrail with ``scoped: true`` runs only
    where a policy names it)."""
    answer_data_classes: Annotated[dict[Word, Literal["refuse", "redact"]],
                                   Meta(max_length=16)] = msgspec.field(default_factory=dict)
    """Guardrail on answers: per data class found in the model's answer (streamed answers are
    held until checked), refuse the answer or replace each value with a placeholder."""
    uninspectable: Literal["refuse", "allow"] = "refuse"
    """A request carrying what polyroute cannot read (an uploaded image or audio file, an
    image to moderate), when this policy has content rules (``data_classes``, ``deny_terms``,
    ``max_prompt_chars``): ``refuse`` it (403, fail closed), or ``allow`` it with only its
    text checked."""
    retain_bodies: bool = False
    """Whether prompt and response bodies may be stored. polyroute stores none (the ledger
    holds counts and names, never text); this records the scope's consent for tools that
    would, and is shown in the request's record."""

    def __post_init__(self) -> None:
        unknown = sorted((set(self.data_classes) | set(self.answer_data_classes))
                         - set(DATA_CLASSES))
        if unknown:
            raise ValueError(f"unknown data class {unknown[0]!r}; use one of "
                             f"{', '.join(DATA_CLASSES)}")
