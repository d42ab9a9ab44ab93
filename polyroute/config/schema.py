"""The config file's schema. Every key of the YAML file is a field here, and nothing else is
accepted: unknown keys are errors, so a typo never silently falls back to a default.

The JSON Schema (``polyroute config schema``) is generated from these same types.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import sys
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from polyroute.adapters.registry import PROTOCOLS

MiB = 1024 * 1024

Positive = Annotated[float, Meta(gt=0)]
NonNegative = Annotated[float, Meta(ge=0)]


class _Section(Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    pass


class ServerSection(_Section, kw_only=True):
    host: str = msgspec.field(default="127.0.0.1")
    port: Annotated[int, Meta(ge=0, le=65535)] = 4000
    max_body_bytes: Annotated[int, Meta(gt=0)] = 8 * MiB
    """Request bodies larger than this get 413."""
    body_timeout_s: Positive = 30.0
    """A client that has not sent its whole body by then gets 408."""
    stream_keepalive_s: Annotated[float, Meta(ge=0)] = 15.0
    """Streams: after this long without a first token, send the 200 headers and an SSE comment
    (': keep-alive'), then one every stream_keepalive_s, so load balancers in front of clients
    do not close a healthy stream that is thinking. From then on a total failure is an error
    event, no longer an HTTP error status. 0: never (headers wait for the first token)."""
    header_timeout_s: Positive = 10.0
    """A connection that has not sent a complete request head (request line and headers)
    this long after it opened, or after its previous request ended, is closed: half-sent
    requests (slowloris) cannot hold sockets."""
    max_connections: Annotated[int, Meta(ge=0)] = 8192
    """Open client connections at most (0: no cap); beyond, new ones are closed at once.
    Never more than the process's file-descriptor limit allows, minus a reserve."""
    max_connections_per_ip: Annotated[int, Meta(ge=0)] = 512
    """Open connections from one client address at most (0: no cap). Behind a load balancer
    or reverse proxy every client shares its address: raise this, or set 0."""
    workers: Annotated[int, Meta(ge=1, le=256)] = 1
    """Processes serving the port (polyroute serve --workers N overrides it). More than one
    with client keys needs state.redis_url, so limits and budgets stay exact across them."""
    shutdown_grace_s: Annotated[float, Meta(ge=0)] = 20.0
    """On SIGTERM or SIGINT, requests in flight get this long to finish before they are
    cancelled; then the ledger is flushed."""


class MetricsSection(_Section, kw_only=True):
    enabled: bool = True
    """Serve GET /metrics (Prometheus text format)."""
    auth: Literal["none", "admin"] = "none"
    """admin: /metrics needs the master key (Authorization: Bearer); for a gateway exposed
    beyond the scraper's network. none: anyone who reaches the port may read it."""
    max_model_labels: Annotated[int, Meta(ge=0, le=100_000)] = 200
    """Client-chosen '<vendor>/<model>' names that become metric labels (after a success);
    the rest are counted under the label '_other'. Configured model groups always are."""


class StorageSection(_Section, kw_only=True):
    sqlite_path: str | None = None
    """Defaults to polyroute.db in the user's data directory."""
    postgres_url: str | None = None
    """Keys, teams and the spend ledger in PostgreSQL (postgresql://user@host:port/db; may be
    a ${ENV} reference) instead of SQLite: what several replicas share."""
    spool_dir: str | None = None
    """Where spend-ledger records are appended before they reach the database (survives
    kill -9 and database outages). Defaults to 'spool' beside sqlite_path."""
    ledger: bool = True
    """Write one ledger record per request (what it cost and what happened: the request
    log). Off: nothing is recorded, and budgets start from zero at each start."""
    request_log: bool | None = None
    """Deprecated and ignored (a warning is logged): the ledger is the request log."""
    flush_interval_s: Positive = 0.5
    flush_batch: Annotated[int, Meta(gt=0)] = 500


class StateSection(_Section, kw_only=True):
    redis_url: str | None = None
    """Share circuit-breaker state between replicas through this Redis (redis://host:port/db;
    may be a ${ENV} reference). Unset: each process keeps its own."""
    sync_interval_s: Positive = 0.5
    """How often a replica adopts the circuits other replicas opened or closed."""
    timeout_s: Positive = 0.1
    """Redis socket timeout: an outage is noticed this fast and never stalls a request."""


class AuthSection(_Section, kw_only=True):
    master_key: str | None = None
    """The administrator's key, only as a ${ENV} reference: the admin API and CLI, and it may
    also call the model endpoints. Unset, and no client key created: open mode (anyone who can
    reach the port may call, as on a loopback-only laptop)."""
    refresh_s: Positive = 1.0
    """How often a replica picks up keys, teams and organisations changed elsewhere."""


class LimitsSection(_Section, kw_only=True):
    default_max_output_tokens: Annotated[int, Meta(gt=0)] = 4096
    """Output tokens reserved (TPM and budget) when a request sets no max_tokens."""
    lease_ttl_s: Positive = 30.0
    """A replica renews its in-flight requests' concurrency slots and budget reservations
    every third of this; those of a replica that died expire after it."""
    on_state_outage: Literal["open", "closed"] = "open"
    """When Redis is unreachable, teams without their own choice are let through (open,
    counted locally) or refused with 503 (closed)."""
    allow_unpriced: bool = False
    """Let a caller with a budget use a deployment whose price is unknown (its spend is
    recorded as unpriced and not counted). Off: such a request gets 403."""


class Quirks(_Section, kw_only=True):
    """Differences between OpenAI-compatible servers, switched on per provider."""

    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = None
    """Rename the output-token limit to the field this server understands."""
    stream_usage: bool = True
    """Ask for usage in streams (stream_options.include_usage); off for servers that reject it."""
    drop_params: list[str] = msgspec.field(default_factory=list)
    """Top-level request parameters removed before sending (ones this server rejects). For a
    protocol that has no equivalent of a parameter, listing it here drops it silently instead
    of answering 400."""
    default_max_tokens: Annotated[int, Meta(gt=0)] | None = None
    """Anthropic protocol: the max_tokens to send when the client gives no output limit
    (Anthropic requires one). Unset: 4096."""
    continuation: Literal["none", "assistant_prefill", "continue_final_message", "prefix"] \
        | None = None
    """How the server continues a final assistant message, used to resume a stream that broke
    mid-answer: assistant_prefill (the message is the prefix: Anthropic, Bedrock, llama.cpp's
    server), continue_final_message (vLLM), prefix (Mistral, DeepSeek's beta URL) or none
    (the answer is regenerated and spliced instead). Unset: assistant_prefill for the
    anthropic and bedrock protocols, the known vendor's own for discovered ones, else none."""
    allowed_s3_prefixes: list[str] = msgspec.field(default_factory=list)
    """Bedrock protocol: the s3:// locations (``s3://bucket/`` or ``s3://bucket/prefix/``) a
    client may name as an image source. Bedrock reads them with the gateway's AWS identity,
    so by default every client s3:// URI is refused."""


class ProviderSection(_Section, kw_only=True):
    protocol: str = "openai"
    """The upstream's wire protocol: one of adapters/registry.py's (openai, anthropic, gemini,
    bedrock, azure, openai_responses)."""
    base_url: str
    api_key: str | None = None
    """Only as an environment reference: ${OPENAI_API_KEY}."""
    auth: Literal["bearer", "api-key", "x-api-key", "x-goog-api-key", "none"] | None = None
    """The header that carries api_key; unset: the protocol's own (openai: bearer, anthropic:
    x-api-key, gemini: x-goog-api-key, azure: api-key, bedrock: bearer for a Bedrock API key,
    openai_responses: bearer).
    Bedrock without an api_key signs every request with SigV4 from the standard AWS
    credentials instead."""
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    """The protocol's own settings, checked against its spec (unknown keys are errors):
    bedrock: region (unset: read from base_url's host bedrock-runtime.<region>.amazonaws.com);
    azure: api_version (unset: 2024-10-21 for deployment URLs, none for the /openai/v1 form;
    empty: never sent). The other protocols take none."""
    region: str | None = None
    """Kept for older files: the same as options.region."""
    api_version: str | None = None
    """Kept for older files: the same as options.api_version."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    quirks: Quirks = msgspec.field(default_factory=Quirks)
    any_model: bool = False
    """Also serve '<provider name>/<any model id>' without a model group."""


class PriceSection(_Section, kw_only=True):
    input_per_1m: NonNegative
    output_per_1m: NonNegative
    cached_input_per_1m: NonNegative | None = None
    cache_write_per_1m: NonNegative | None = None
    """Prompt tokens written to the vendor's cache; unset: the input price."""
    reasoning_per_1m: NonNegative | None = None
    """Reasoning tokens, where priced apart from output; unset: the output price."""


class DeploymentSection(_Section, kw_only=True):
    provider: str
    model: str
    """The model id the upstream knows."""
    name: str | None = None
    """Unique label in logs and metrics; defaults to '<provider>/<model>'."""
    weight: Positive = 1.0
    priority: int = 0
    """Lower is tried first under 'priority' routing."""
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    """Free-form labels such as cloud and region."""
    price: PriceSection | None = None
    context_window: Annotated[int, Meta(gt=0)] | None = None
    profile: str | None = None
    """For 'auto' routing: which trained quality profile stands for this model — a trained
    model's name or a tier (frontier, strong, mid, weak, small); see docs/router.md."""


FailoverTrigger = Literal[
    "rate_limited", "unavailable", "timeout", "connect", "auth", "protocol", "not_found",
    "context_window", "content_filter",
]


class RetrySection(_Section, kw_only=True):
    max_attempts: Annotated[int, Meta(ge=1, le=20)] = 4
    """Upstream attempts per request, across all deployments, the first one included."""
    retries_per_deployment: Annotated[int, Meta(ge=0, le=10)] = 3
    """Retries on the same deployment once no other deployment is left to try. Three: a
    deployment failing 30 % of requests then still answers 99 % of them."""
    backoff_base_s: NonNegative = 0.2
    """First backoff ceiling; each retry doubles it (full jitter: a random wait up to it)."""
    backoff_max_s: NonNegative = 5.0
    max_retry_after_s: NonNegative = 10.0
    """The longest Retry-After worth waiting for when no other deployment can serve; a longer
    one is passed to the client as a 429 with that Retry-After."""
    before_other_model: Annotated[int, Meta(ge=0, le=5)] = 1
    """Retries of a deployment after a transient error (5xx, reset, 429 with a short
    Retry-After), after a jittered pause, before the request moves to a different model (a
    fallback group, the next entry of the request's 'models'): the client asked for this one."""
    before_same_model: Annotated[int, Meta(ge=0, le=5)] = 0
    """The same, before moving to another deployment of the same model (same group or same
    upstream model name): none, that one gives the same answer and is probably healthy."""
    short_retry_after_s: NonNegative = 1.0
    """A 429 is worth the retries above only when its Retry-After is at most this."""


class TimeoutsSection(_Section, kw_only=True):
    connect_s: Positive = 5.0
    """To open a connection to an upstream."""
    ttft_s: Positive = 30.0
    """Streams: until the first content arrives; after that the attempt is failed over."""
    stall_s: Positive = 30.0
    """Streams: the longest silence between two chunks once the answer has started."""
    response_s: Positive = 300.0
    """Non-streaming: until the whole answer has arrived, per attempt."""
    total_s: Positive = 600.0
    """The whole request: every attempt, backoff and wait included."""
    adaptive: bool = True
    """Learn each upstream's stall and first-token deadlines from its own streams:
    adaptive_factor × the 99th percentile of its inter-chunk gaps (first-token times, scaled
    by prompt size), never below the floors below nor above stall_s / ttft_s."""
    adaptive_factor: Annotated[float, Meta(ge=1)] = 4.0
    stall_floor_s: Positive = 5.0
    """The shortest stall deadline adaptation may set."""
    ttft_floor_s: Positive = 10.0
    """The shortest first-token deadline adaptation may set."""


class CircuitSection(_Section, kw_only=True):
    enabled: bool = True
    failures: Annotated[int, Meta(ge=1)] = 5
    """Failed client requests (of the last request_volume, within window_s) needed to open the
    circuit (the retries of one request are one failure; client-caused timeouts and refusals
    that are answers never count)."""
    failure_rate: Annotated[float, Meta(gt=0, le=1)] = 0.5
    """...and at least this share of those requests failed: a deployment that answers most
    requests stays in use."""
    request_volume: Annotated[int, Meta(ge=1, le=10000)] = 10
    """The rate is over the deployment's last this-many requests (within window_s), so a
    healthy past does not delay opening once it goes down. Defaults: 5 of the last 10."""
    window_s: Positive = 30.0
    cooldown_s: Positive = 30.0
    """How long an open circuit keeps traffic away; then exactly one probe is let through."""


class HedgeSection(_Section, kw_only=True):
    enabled: bool = False
    delay_s: Positive | None = None
    """Send the hedge after this long without a first token; unset: the group's observed p95
    time to first token (at least min_delay_s)."""
    min_delay_s: Positive = 0.1


class ResilienceSection(_Section, kw_only=True):
    """Retries, failover, circuit breakers, deadlines and hedging. Set once at the top level;
    a group's own 'resilience' overrides only the keys it names."""

    failover_on: list[FailoverTrigger] = msgspec.field(default_factory=lambda: [
        "rate_limited", "unavailable", "timeout", "connect", "auth", "protocol", "not_found",
        "context_window"])
    """Error classes after which the next deployment is tried. context_window only moves to a
    deployment with a larger context_window; content_filter is off by default."""
    retry: RetrySection = msgspec.field(default_factory=RetrySection)
    timeouts: TimeoutsSection = msgspec.field(default_factory=TimeoutsSection)
    circuit: CircuitSection = msgspec.field(default_factory=CircuitSection)
    hedge: HedgeSection = msgspec.field(default_factory=HedgeSection)


class AutoSection(_Section, kw_only=True):
    """The auto-router's trade-off for a group (set one; none: willingness_to_pay 0.02)."""

    willingness_to_pay: NonNegative | None = None
    """USD one more good answer is worth: maximise predicted quality − cost / this."""
    quality_floor: Annotated[float, Meta(ge=0, le=1)] | None = None
    """The cheapest deployment predicted at least this good."""
    cost_ceiling: NonNegative | None = None
    """USD per request; dearer deployments go last."""


class GroupSection(_Section, kw_only=True):
    routing: Literal["weighted", "priority", "auto"] = "weighted"
    """auto: the auto-router picks per request by predicted quality and price."""
    deployments: Annotated[list[DeploymentSection], Meta(min_length=1)]
    auto: AutoSection | None = None
    fallbacks: list[str] = msgspec.field(default_factory=list)
    """Other model groups to try, in order, once this group's deployments have failed."""
    resilience: ResilienceSection = msgspec.field(default_factory=ResilienceSection)


class ConfigFile(_Section, kw_only=True):
    server: ServerSection = msgspec.field(default_factory=ServerSection)
    storage: StorageSection = msgspec.field(default_factory=StorageSection)
    state: StateSection = msgspec.field(default_factory=StateSection)
    auth: AuthSection = msgspec.field(default_factory=AuthSection)
    metrics: MetricsSection = msgspec.field(default_factory=MetricsSection)
    limits: LimitsSection = msgspec.field(default_factory=LimitsSection)
    providers: dict[str, ProviderSection] = msgspec.field(default_factory=dict)
    model_groups: dict[str, GroupSection] = msgspec.field(default_factory=dict)
    discover_from_env: bool = False
    """Also add the vendors found in the environment, as with no config file."""
    resilience: ResilienceSection = msgspec.field(default_factory=ResilienceSection)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the file, with each key's docstring above as its description."""
    schema: dict[str, Any] = msgspec.json.schema(ConfigFile)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "polyroute configuration"
    protocol = schema["$defs"]["ProviderSection"]["properties"]["protocol"]
    protocol["enum"] = list(PROTOCOLS)  # the registry's, so an editor completes them
    for struct_name, docs in _attribute_docs().items():
        properties = schema["$defs"].get(struct_name, {}).get("properties", {})
        for key, doc in docs.items():
            if key in properties:
                properties[key]["description"] = doc
    return schema


def _attribute_docs() -> dict[str, dict[str, str]]:
    """Attribute docstrings (a string right after an annotated field) of every class here."""
    tree = ast.parse(inspect.getsource(sys.modules[__name__]))
    found: dict[str, dict[str, str]] = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        docs = found.setdefault(cls.name, {})
        for field_node, next_node in itertools.pairwise(cls.body):
            if (isinstance(field_node, ast.AnnAssign) and isinstance(field_node.target, ast.Name)
                    and isinstance(next_node, ast.Expr)
                    and isinstance(next_node.value, ast.Constant)
                    and isinstance(next_node.value.value, str)):
                docs[field_node.target.id] = " ".join(next_node.value.value.split())
    return found
