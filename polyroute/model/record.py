"""What happened to one request: the record metrics, the request log and (later) the ledger
are all written from."""

from __future__ import annotations

import msgspec

from polyroute.model.usage import Usage


class Attempt(msgspec.Struct, omit_defaults=True):
    deployment: str
    vendor: str
    latency_s: float
    error_class: str | None = None
    status: int = 200


class RequestRecord(msgspec.Struct, omit_defaults=True):
    request_id: str
    started_at: float
    """Unix time."""
    endpoint: str
    """'chat' or 'embeddings'."""
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
    route: str | None = None
    """The auto-router's decision: the chosen deployment and predicted scores."""
    key_id: str | None = None
    team: str | None = None
    org: str | None = None
    client_request_id: str | None = None
    """The id the client chose (``x-client-request-id`` / ``x-request-id``); ``request_id``
    is always the gateway's own."""
