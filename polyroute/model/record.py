"""What happened to one request: the record metrics, the request log and (later) the ledger
are all written from."""

from __future__ import annotations

import msgspec

from polyroute.model.media import Units
from polyroute.model.usage import Usage


class Attempt(msgspec.Struct, omit_defaults=True):
    deployment: str
    vendor: str
    latency_s: float
    error_class: str | None = None
    status: int = 200


class Charge(msgspec.Struct, omit_defaults=True):
    """What one attempt of a stream finished by several attempts billed, priced at its own
    deployment's price when the request settles."""

    vendor: str
    upstream_model: str
    usage: Usage
    estimated: bool = False
    """The attempt broke before its upstream reported usage: about 4 characters a token."""


class RequestRecord(msgspec.Struct, omit_defaults=True):
    request_id: str
    started_at: float
    """Unix time."""
    endpoint: str
    """'chat', 'embeddings', or a media endpoint (``model/media.py``: 'images.generations',
    'audio.speech', 'rerank' …)."""
    requested_model: str
    stream: bool = False
    model_group: str | None = None
    vendor: str | None = None
    deployment: str | None = None
    upstream_model: str | None = None
    status: int = 200
    error_class: str | None = None
    latency_s: float = 0.0
    ttft_s: float | None = None
    attempts: list[Attempt] = msgspec.field(default_factory=list)
    usage: Usage | None = None
    charges: list[Charge] | None = None
    """Set when a broken stream was finished by other attempts: each attempt's usage (``usage``
    is then their sum)."""
    route: str | None = None
    """The auto-router's decision (the chosen deployment and predicted scores), or another
    strategy's reason (docs/routing.md): ``x-polyroute-route``."""
    route_kind: str | None = None
    """``<strategy>/<kind>`` of that reason (e.g. ``least_latency/explore``): a metric label."""
    key_id: str | None = None
    team: str | None = None
    org: str | None = None
    estimated_input_tokens: int = 0
    """Admission's estimate of the prompt: charged when a stream ends without usage."""
    output_limit: int | None = None
    """The most output the upstream may write (every answer's limit, as sent); None: none
    was sent. An estimate of what was streamed never exceeds it."""
    output_units: int = 0
    """Quarter tokens of the output relayed to the client (text, reasoning, tool arguments):
    what is charged when the answer comes without the upstream's usage."""
    features: str | None = None
    """The capabilities the request used (``model/features.py``): tools, json_schema, vision…"""
    governance: str | None = None
    """The data-governance policies applied and what they did (``k:…,t:… pii:redacted
    email=1``); None: none applied."""
    client_request_id: str | None = None
    """The id the client chose (``x-client-request-id`` / ``x-request-id``); ``request_id``
    is always the gateway's own."""
    cache: str | None = None
    """The response cache: 'hit', 'semantic' (a hit for a close enough question), 'miss' or
    'bypass'; None: the group does not cache."""
    cache_similarity: float | None = None
    """A semantic hit ('semantic'): the cosine similarity of the two questions."""
    cache_age_s: int | None = None
    """A hit: seconds since the answer was stored (the ``Age`` header)."""
    saved_usage: Usage | None = None
    """A hit: the usage the stored answer cost when it was made (``usage`` stays None: no
    tokens were spent), priced at settlement as the amount saved."""
    saved_usd: float | None = None
    """A hit: what the answer would have cost, set by the policy when it settles."""
    traceparent: str | None = None
    """The client's W3C ``traceparent`` header, as sent: the request's span joins its trace."""
    prompt: str | None = None
    """What the auto-router reads of the prompt, kept for training only when the caller's
    governance policy sets retain_bodies (ledger column ``prompt``)."""
    cost_usd: float | None = None
    """What the request cost, set by the policy when it settles (None: open mode, or not
    priced); observers, which run after it, read it (traces, request logs)."""
    units: Units | None = None
    """A media request: what it is billed by besides tokens (images, seconds, characters,
    searches), as measured from the answer; priced by the deployment's ``per_unit``."""
    units_estimated: bool = False
    """``units`` were estimated, not measured (a compressed upload of an unknown format,
    transcribed as plain text: its seconds from its size); the ledger's usage_estimated."""
