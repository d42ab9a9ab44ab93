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
    max_upload_bytes: Annotated[int, Meta(gt=0)] = 50 * MiB
    """Multipart uploads (/v1/audio/transcriptions, /v1/images/edits …) larger than this get
    413. They are spooled to a temporary file, not held in memory (``TMPDIR``)."""


class MetricsSection(_Section, kw_only=True):
    enabled: bool = True
    """Serve GET /metrics (Prometheus text format)."""
    auth: Literal["none", "admin"] = "none"
    """admin: /metrics needs the master key (Authorization: Bearer); for a gateway exposed
    beyond the scraper's network. none: anyone who reaches the port may read it."""
    max_model_labels: Annotated[int, Meta(ge=0, le=100_000)] = 200
    """Client-chosen '<vendor>/<model>' names that become metric labels (after a success);
    the rest are counted under the label '_other'. Configured model groups always are."""
    independence_interval_s: NonNegative = 60.0
    """How often the vendor-independence gauges (polyroute_dependence_*) are measured from
    the ledger, off the request path; 0: never. See docs/independence.md."""
    independence_window_s: Positive = 7 * 86400.0
    """The ledger window those gauges measure (default: the last 7 days)."""


class TracingSection(_Section, kw_only=True):
    enabled: bool = False
    """Export OpenTelemetry traces (OTLP/HTTP protobuf): a span per request, a child span per
    upstream attempt, and each attempt's W3C traceparent sent upstream."""
    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    """The collector's OTLP/HTTP traces URL (its path included)."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    """Sent with every export (e.g. a vendor's API key: write ${ENV_VAR})."""
    service_name: str = "polyroute"
    """The spans' service.name resource attribute."""
    sample_ratio: Annotated[float, Meta(ge=0, le=1)] = 1.0
    """Share of new traces recorded; a client's traceparent decides for its own requests."""
    max_queue: Annotated[int, Meta(ge=1)] = 8192
    """Finished spans waiting for export at most; beyond, new ones are dropped (counted in
    polyroute_trace_spans_dropped)."""
    export_interval_s: Positive = 1.0
    """How often queued spans are sent (at once when 512 are waiting)."""


class LogFileSection(_Section, kw_only=True):
    path: str
    """A JSONL file of request lines, relative to the config file; rotated by size."""
    max_bytes: Annotated[int, Meta(ge=1024)] = 100 * MiB
    """Rotate when the file would grow past this (path → path.1 → … path.N)."""
    backups: Annotated[int, Meta(ge=0, le=1000)] = 5
    """Rotated files kept."""


class LogWebhookSection(_Section, kw_only=True):
    url: str
    """Request lines are POSTed here as a JSON array, in batches."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    """Sent with every batch (credentials: write ${ENV_VAR})."""
    batch_size: Annotated[int, Meta(ge=1, le=100_000)] = 500
    retries: Annotated[int, Meta(ge=0, le=100)] = 5
    """A batch that fails (connection error, 5xx, 429) is sent again this many times, with
    exponential backoff; then it is dropped and counted."""
    timeout_s: Positive = 10.0


class LogsSection(_Section, kw_only=True):
    requests: bool = False
    """One structured JSON line per request on the logger 'polyroute.requests' (stderr):
    ids, key id, team, model, deployment, attempts, status, tokens, cost, latency. Never a
    body or a secret."""
    file: LogFileSection | None = None
    webhook: LogWebhookSection | None = None
    queue_size: Annotated[int, Meta(ge=1)] = 10_000
    """Lines waiting for each sink at most; beyond, new ones are dropped (counted in
    polyroute_log_lines_dropped)."""
    flush_interval_s: Positive = 1.0
    """How often the sinks write what is queued."""


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
    response_retention_s: Positive = 30 * 86400.0
    """How long a stored Responses answer (store: true) can be continued with
    previous_response_id or read back (GET /v1/responses/{id}): 30 days."""
    batch_poll_s: Positive = 60.0
    """How often unfinished batches are looked at upstream, to settle the ones that ended
    in the ledger (a client's retrieve settles one at once)."""


class StateSection(_Section, kw_only=True):
    redis_url: str | None = None
    """Share circuit-breaker state between replicas through this Redis (redis://host:port/db;
    may be a ${ENV} reference). Unset: each process keeps its own."""
    sync_interval_s: Positive = 0.5
    """How often a replica adopts the circuits other replicas opened or closed, and exchanges
    its in-flight counts and vendor-share windows with them."""
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
    bedrock: region (unset: read from base_url's host bedrock-runtime.<region>.amazonaws.com),
    batch_s3_uri and batch_role_arn (OpenAI batches as batch inference jobs), batch_s3_endpoint,
    batch_min_records, batch_max_records, batch_max_file_bytes (Bedrock's batch quotas);
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
    per_unit: dict[str, NonNegative] | None = None
    """Media endpoints' units in USD each: ``image:1024x1024:hd`` (or ``image:1024x1024``,
    ``image``), ``second`` of audio transcribed, ``character`` spoken, ``search`` (rerank).
    A media request whose unit is listed is billed by it, otherwise by its tokens."""


class CapabilitiesSection(_Section, kw_only=True):
    """A deployment's capabilities where they differ from the capability catalog's (or the
    catalog does not know the model); unset keys keep the catalog's. See docs/independence.md."""

    tools: bool | None = None
    parallel_tool_calls: bool | None = None
    json_schema: bool | None = None
    """Strict structured output (response_format json_schema)."""
    vision: bool | None = None
    audio: bool | None = None
    context_window: Annotated[int, Meta(gt=0)] | None = None
    max_output: Annotated[int, Meta(gt=0)] | None = None
    streaming_usage: bool | None = None
    prompt_caching: bool | None = None


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
    rpm: Annotated[int, Meta(gt=0)] | None = None
    """The vendor's requests-per-minute quota for this deployment: the gateway sends no more
    (exact across replicas with state.redis_url; a request waits up to the group's
    routing_options.queue_s, then goes to another deployment or gets 429), and 'quota'
    routing moves traffic away before it is used up."""
    tpm: Annotated[int, Meta(gt=0)] | None = None
    """The same for tokens per minute (the prompt estimate and the output limit count)."""
    cloud: str | None = None
    """Whose infrastructure serves it (aws, azure, gcp, …). Unset: aws for the bedrock
    protocol, azure for azure, else the provider itself. Used by the independence measures."""
    region: str | None = None
    """Where it is served (us-east-1, westeurope, …). Unset: the bedrock protocol's region,
    else unknown."""
    capabilities: CapabilitiesSection | None = None
    """Overrides of the capability catalog's profile of this model."""
    equivalent: bool = True
    """false: not interchangeable with the rest of its group (another family or tier): the
    independence check does not count it as somewhere traffic can move."""


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


class CascadeJudgeSection(_Section, kw_only=True):
    """One check a cascade step's answer must pass to be kept (docs/routing.md#cascade)."""

    kind: Literal["logprobs", "agreement", "verifier", "json", "regex"]
    """logprobs: the answer's mean token probability (geometric) is at least ``threshold``;
    agreement: a second sample of the same step says the same (similarity ≥ ``threshold``);
    verifier: the model group ``verifier`` answers yes to "is this answer correct?"; json:
    the answer parses as JSON; regex: the answer matches the pattern of ``patterns`` that the
    request names in ``metadata.polyroute_check`` (``default`` when it names none)."""
    threshold: Annotated[float, Meta(ge=0, le=1)] | None = None
    """logprobs: 0.8; agreement: 0.8 (docs/router.md has them measured)."""
    verifier: str | None = None
    """verifier: the model group asked the yes/no question (not this one)."""
    patterns: dict[str, str] = msgspec.field(default_factory=dict)
    """regex: named patterns (Python ``re``, searched in the answer). Clients choose one by
    name, never send their own: a client's pattern could backtrack for minutes."""


class CascadeSection(_Section, kw_only=True):
    """``routing: cascade``: the deployments are tried cheapest-first in the order listed;
    each answer but the last is judged and kept only when every judge passes it."""

    judges: Annotated[list[CascadeJudgeSection], Meta(min_length=1)]


class RoutingOptions(_Section, kw_only=True):
    """Settings of the routing strategies that read the room (docs/routing.md)."""

    alpha: Annotated[float, Meta(gt=0, le=1)] = 0.3
    """least_latency: weight of the newest answer in each deployment's latency estimate."""
    explore: Annotated[float, Meta(ge=0, le=1)] = 0.05
    """least_latency: share of requests sent first to a random deployment of the first
    priority tier, so one that has recovered is noticed."""
    quota_reserve: Annotated[float, Meta(ge=0, lt=1)] = 0.1
    """quota: a deployment with at most this share of its quota left is used only after
    every other one."""
    expected_output_tokens: Annotated[int, Meta(gt=0)] = 1024
    """cost: the output a request is priced with (its own max_tokens when smaller)."""
    queue_s: NonNegative = 0.0
    """How long a request may wait for a deployment's rpm/tpm to free up when no deployment
    of the request has any left (0: refused at once with 429 and a Retry-After)."""


CacheMode = Literal["off", "deterministic", "all"] | bool
"""YAML reads an unquoted ``off`` as false: false is accepted as 'off' (true is refused)."""


class CacheSection(_Section, kw_only=True):
    """The exact response cache (docs/caching.md). Which groups use it: ``mode`` here, or a
    group's own ``cache``."""

    mode: CacheMode = "off"
    """For groups that set no ``cache`` of their own. deterministic: only requests with
    temperature 0 (or the header x-polyroute-cache: on) are cached; all: every request."""
    backend: Literal["memory", "redis"] = "memory"
    """memory: in this process, bounded by max_bytes; redis: shared by replicas through
    state.redis_url."""
    max_bytes: Annotated[int, Meta(gt=0)] = 64 * MiB
    """memory: the most bytes of answers kept; the least recently used go first."""
    max_entry_bytes: Annotated[int, Meta(gt=0)] = 1 * MiB
    """Answers larger than this are not stored."""
    ttl_s: Positive = 3600.0
    """How long an answer is served; a request's Cache-Control: max-age=N asks for younger."""
    semantic_threshold: Annotated[float, Meta(gt=0, le=1)] = 0.90
    """Groups with semantic: true: the least cosine similarity of two questions for one's
    answer to serve the other (docs/caching.md has the precision and recall measured)."""
    scope: Literal["org", "team", "key", "global"] = "org"
    """Who shares cached answers. org: callers of one organisation (a key without one: its
    team, else only itself); global: every caller (only for gateways of one tenant)."""


Share = Annotated[float, Meta(gt=0, le=1)]


class ShareCapSection(_Section, kw_only=True):
    """A vendor-share cap on a team's or an organisation's traffic (issue 14, item 4)."""

    max_share: Share | dict[str, Share] | None = None
    """No vendor gets more than this share of the scope's answered requests over window_s: a
    number caps every vendor, a mapping caps the vendors (provider names) it names. The router
    moves a request whose first choice is at a cap to the cheapest deployment of a vendor
    under it (docs/independence.md)."""
    window_s: Positive = 300.0
    """The sliding window max_share is measured over."""


class CapsSection(ShareCapSection, kw_only=True):
    """Vendor-independence caps on a group (issue 14, item 4; docs/independence.md)."""

    min_vendors: Annotated[int, Meta(ge=1)] | None = None
    """The group must list equivalent deployments of at least this many vendors (checked
    when the config is loaded), and at least this many vendors answer some of its requests
    in every window: while fewer have, the cheapest deployment of another vendor goes
    first."""


class ScopeCapsSection(_Section, kw_only=True):
    """Vendor-share caps per team and per organisation ('*': each one not named)."""

    teams: dict[str, ShareCapSection] = msgspec.field(default_factory=dict)
    """Team id → its caps; '*' caps every other team, each on its own traffic."""
    orgs: dict[str, ShareCapSection] = msgspec.field(default_factory=dict)
    """Organisation id → its caps; '*' caps every other organisation, each on its own."""


class GroupSection(_Section, kw_only=True):
    routing: Literal["weighted", "priority", "auto", "least_latency", "least_busy", "quota",
                     "cost", "cascade"] = "weighted"
    """auto: the auto-router picks per request by predicted quality and price.
    least_latency, least_busy, quota, cost: by what the deployments are doing now (fastest,
    fewest in flight, most quota left, cheapest that fits); see docs/routing.md.
    cascade: ask the deployments in order, judging each answer (the ``cascade`` section)."""
    routing_options: RoutingOptions = msgspec.field(default_factory=RoutingOptions)
    deployments: Annotated[list[DeploymentSection], Meta(min_length=1)]
    auto: AutoSection | None = None
    cascade: CascadeSection | None = None
    """routing: cascade: how each step's answer is judged."""
    fallbacks: list[str] = msgspec.field(default_factory=list)
    """Other model groups to try, in order, once this group's deployments have failed."""
    caps: CapsSection | None = None
    """Caps on dependence on one vendor (max_share, min_vendors); docs/independence.md."""
    resilience: ResilienceSection = msgspec.field(default_factory=ResilienceSection)
    cache: CacheMode | None = None
    """The response cache for this group (unset: cache.mode)."""
    semantic: bool = False
    """Also answer a question close enough to a cached one (cache.semantic_threshold), with
    everything else equal. A false hit serves a wrong answer: see docs/caching.md. Needs
    pip install 'polyroute[semantic]'."""
    prompt_affinity: bool = True
    """weighted routing: send a prompt that begins like an earlier one (1024+ tokens of
    system prompt, document, tools) to the deployment that had it, while that one is healthy
    and within 1.5 times its weight's share, so the vendor's prompt cache there is read."""


class GuardrailSection(_Section, kw_only=True):
    """A guardrail (issue 11). ``webhook``: polyroute POSTs {"stage", "model", "text"} as
    JSON and expects {"allow": true|false, "reason"?: "…"}. ``json_schema``: an answer to a
    request with ``response_format: json_schema`` must be JSON valid against its schema
    (needs the ``jsonschema`` package: ``pip install polyroute[guardrails]``).
    ``detectors``: personal data and secrets (``classes``) refused or, in answers, redacted.
    ``deny_terms``: text containing one of ``terms`` is refused. ``max_chars``: text longer
    than ``max_chars`` is refused."""

    type: Literal["webhook", "json_schema", "detectors", "deny_terms", "max_chars"] = "webhook"
    url: str | None = None
    """The webhook's URL (http or https); required for ``webhook``."""
    stages: Annotated[list[Literal["request", "response"]], Meta(min_length=1)] = \
        msgspec.field(default_factory=lambda: ["request"])
    """``request``: the prompt, before routing; ``response``: the answer, whole or streamed."""
    timeout_s: Positive = 1.0
    """The guardrail's time budget per check."""
    on_error: Literal["open", "closed"] = "closed"
    """When the guardrail fails or is late: let the request through (open) or refuse it with
    503 (closed)."""
    stream: Literal["incremental", "hold"] | None = None
    """A streamed answer: ``incremental`` checks each window of ``window_chars`` before it is
    released to the client (a violation ends the stream with the dialect's error event);
    ``hold`` holds the whole answer until it is checked. Default: ``hold`` for json_schema,
    max_chars and redacting detectors, else ``incremental``."""
    window_chars: Annotated[int, Meta(ge=16, le=1_000_000)] = 256
    """``incremental``: how much new text is gathered before each check."""
    scoped: bool = False
    """Run only for the organisations, teams and keys whose governance policy names it
    (``guardrails: [name]``); by default a guardrail runs on every request."""
    classes: list[str] = msgspec.field(default_factory=list)
    """``detectors``: the data classes to find (``pii``, ``secrets``, or kinds: ``email``,
    ``card`` …)."""
    backend: Literal["builtin", "presidio"] = "builtin"
    """``detectors``: polyroute's own detectors, or presidio-analyzer's pattern recognizers
    for personal data (``pip install presidio-analyzer``; no spaCy model needed); secrets
    always use the built-in ones."""
    action: Literal["refuse", "redact"] = "refuse"
    """``detectors``: refuse the text, or (answers only) replace each value found with a
    placeholder (``[EMAIL_1]``)."""
    terms: list[str] = msgspec.field(default_factory=list)
    """``deny_terms``: the terms (case-insensitive substrings)."""
    max_chars: Annotated[int, Meta(gt=0)] | None = None
    """``max_chars``: the longest text allowed."""
    uninspectable: Literal["refuse", "allow"] = "refuse"
    """A prompt guardrail (stage request) meeting a request carrying what polyroute cannot read
    (an uploaded image or audio file, an image to moderate): ``refuse`` it (403, fail closed)
    or ``allow`` it through with only its text checked."""


class McpServerSection(_Section, kw_only=True):
    url: str | None = None
    """A streamable HTTP MCP server's endpoint, e.g. http://127.0.0.1:8931/mcp. Set url or
    command, not both."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    """Sent with every request to url; a credential (by its name) must be a ${VAR} reference."""
    command: list[str] | None = None
    """A stdio MCP server polyroute starts itself (and stops on shutdown and reload): the
    program and its arguments, e.g. [npx, -y, "@modelcontextprotocol/server-everything"]."""
    env: dict[str, str] = msgspec.field(default_factory=dict)
    """The stdio server's environment (values may be ${VAR} references), added to a minimal
    default one (HOME, PATH, USER …), never the gateway's whole environment."""
    cwd: str | None = None
    """The stdio server's working directory."""
    timeout_s: Positive = 30.0
    """Per tool call and per tool listing; a call that takes longer fails (and counts
    against the server's circuit)."""
    connect_timeout_s: Positive = 10.0
    """To connect (or start the process) and initialise the MCP session."""
    tools_ttl_s: NonNegative = 60.0
    """How long the server's tool list is reused before it is asked again."""
    circuit: CircuitSection | None = None
    """This server's circuit breaker; unset: resilience.circuit's settings."""


class McpSection(_Section, kw_only=True):
    servers: dict[str, McpServerSection] = msgspec.field(default_factory=dict)
    """Upstream MCP servers by name (letters, digits and single - or _ between them); their
    tools are offered as <name>__<tool> at /mcp and
    to chat requests that ask for them (docs/mcp.md)."""
    max_tool_rounds: Annotated[int, Meta(ge=1, le=50)] = 8
    """A chat request with MCP tools: at most this many model calls (each billed) before the
    gateway stops running tools and answers with what the model said last."""


class ConfigFile(_Section, kw_only=True):
    server: ServerSection = msgspec.field(default_factory=ServerSection)
    storage: StorageSection = msgspec.field(default_factory=StorageSection)
    state: StateSection = msgspec.field(default_factory=StateSection)
    auth: AuthSection = msgspec.field(default_factory=AuthSection)
    metrics: MetricsSection = msgspec.field(default_factory=MetricsSection)
    tracing: TracingSection = msgspec.field(default_factory=TracingSection)
    logs: LogsSection = msgspec.field(default_factory=LogsSection)
    limits: LimitsSection = msgspec.field(default_factory=LimitsSection)
    providers: dict[str, ProviderSection] = msgspec.field(default_factory=dict)
    model_groups: dict[str, GroupSection] = msgspec.field(default_factory=dict)
    cache: CacheSection = msgspec.field(default_factory=CacheSection)
    discover_from_env: bool = False
    """Also add the vendors found in the environment, as with no config file."""
    resilience: ResilienceSection = msgspec.field(default_factory=ResilienceSection)
    guardrails: dict[str, GuardrailSection] = msgspec.field(default_factory=dict)
    """Guardrails by name, run in name order on every request (or, ``scoped``, on the requests
    of the scopes whose policy names them) (docs/governance.md)."""
    mcp: McpSection = msgspec.field(default_factory=McpSection)
    """The MCP gateway: upstream MCP servers fronted at /mcp (docs/mcp.md)."""
    caps: ScopeCapsSection = msgspec.field(default_factory=ScopeCapsSection)
    """Vendor-share caps per team and organisation (a group's own are under the group)."""


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
