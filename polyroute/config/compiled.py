"""The validated, immutable configuration the engine reads. Built only by :mod:`.load`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from polyroute.model.mcp import McpServer as McpServer
from polyroute.model.price import Price as Price
from polyroute.model.upstream import Deployment as Deployment
from polyroute.model.upstream import Endpoint as Endpoint
from polyroute.model.upstream import Quirks as Quirks
from polyroute.pricing.catalog import PriceCatalog

if TYPE_CHECKING:  # numpy: imported only when a group routes auto
    from polyroute.autorouter import AutoRouter


@dataclass(frozen=True, slots=True)
class Retry:
    max_attempts: int = 4
    retries_per_deployment: int = 3
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0
    max_retry_after_s: float = 10.0
    before_other_model: int = 1
    before_same_model: int = 0
    short_retry_after_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float = 5.0
    ttft_s: float = 30.0
    stall_s: float = 30.0
    response_s: float = 300.0
    total_s: float = 600.0
    adaptive: bool = True
    """Stall and first-token deadlines learnt per upstream (engine/deadlines.py), within
    [stall_floor_s, stall_s] and [ttft_floor_s, ttft_s]."""
    adaptive_factor: float = 4.0
    stall_floor_s: float = 5.0
    ttft_floor_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Circuit:
    enabled: bool = True
    failures: int = 5
    failure_rate: float = 0.5
    request_volume: int = 10
    window_s: float = 30.0
    cooldown_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Hedge:
    enabled: bool = False
    delay_s: float | None = None
    min_delay_s: float = 0.1


DEFAULT_FAILOVER_ON = frozenset({
    "rate_limited", "unavailable", "timeout", "connect", "auth", "protocol", "not_found",
    "context_window"})


@dataclass(frozen=True, slots=True)
class Resilience:
    failover_on: frozenset[str] = DEFAULT_FAILOVER_ON
    retry: Retry = Retry()
    timeouts: Timeouts = Timeouts()
    circuit: Circuit = Circuit()
    hedge: Hedge = Hedge()


@dataclass(frozen=True, slots=True)
class AutoPolicy:
    willingness_to_pay: float | None = None
    quality_floor: float | None = None
    cost_ceiling: float | None = None


@dataclass(frozen=True, slots=True)
class CascadeJudge:
    """schema.CascadeJudgeSection, with its default threshold filled in."""

    kind: str
    threshold: float = 0.8
    verifier: str | None = None
    patterns: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CascadePolicy:
    judges: tuple[CascadeJudge, ...]

    @property
    def calls_per_step(self) -> int:
        """The most upstream calls one judged step makes (for the budget's worst case)."""
        return 1 + sum(j.kind in ("agreement", "verifier") for j in self.judges)


@dataclass(frozen=True, slots=True)
class RoutingKnobs:
    """The routing strategies' settings (schema.RoutingOptions documents each)."""

    alpha: float = 0.3
    explore: float = 0.05
    quota_reserve: float = 0.1
    expected_output_tokens: int = 1024
    queue_s: float = 0.0
    """How long a request waits for a deployment's own rpm/tpm to free up, instead of moving
    on or being refused."""


@dataclass(frozen=True, slots=True)
class VendorCaps:
    max_share: float | None = None
    """Every vendor's cap, unless ``shares`` names it."""
    window_s: float = 300.0
    min_vendors: int | None = None
    shares: Mapping[str, float] = field(default_factory=dict)
    """Vendor → its own cap."""

    def limit(self, vendor: str) -> float | None:
        return self.shares.get(vendor, self.max_share)


@dataclass(frozen=True, slots=True)
class ScopeCaps:
    """Vendor-share caps per team and organisation ('*': each one not named)."""

    teams: Mapping[str, VendorCaps] = field(default_factory=dict)
    orgs: Mapping[str, VendorCaps] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelGroup:
    name: str
    routing: str
    deployments: tuple[Deployment, ...]
    fallbacks: tuple[str, ...] = ()
    resilience: Resilience = Resilience()
    auto: AutoPolicy | None = None
    knobs: RoutingKnobs = RoutingKnobs()
    cache: str | None = None
    """'off', 'deterministic' or 'all'; None: the gateway's CacheSettings.mode."""
    prompt_affinity: bool = True
    semantic: bool = False
    caps: VendorCaps | None = None
    cascade: CascadePolicy | None = None


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 4000
    max_body_bytes: int = 8 * 1024 * 1024
    body_timeout_s: float = 30.0
    stream_keepalive_s: float = 15.0
    """0: off. See schema.ServerSection."""
    header_timeout_s: float = 10.0
    max_connections: int = 8192
    max_connections_per_ip: int = 512
    workers: int = 1
    shutdown_grace_s: float = 20.0
    max_upload_bytes: int = 50 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    enabled: bool = True
    auth: str = "none"
    """'none' or 'admin' (the master key)."""
    max_model_labels: int = 200
    independence_interval_s: float = 60.0
    """How often the dependence gauges are measured from the ledger; 0: never."""
    independence_window_s: float = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class TracingSettings:
    enabled: bool = False
    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    headers: Mapping[str, str] = field(default_factory=dict)
    service_name: str = "polyroute"
    sample_ratio: float = 1.0
    max_queue: int = 8192
    export_interval_s: float = 1.0


@dataclass(frozen=True, slots=True)
class LogFileSettings:
    path: str
    max_bytes: int = 100 * 1024 * 1024
    backups: int = 5


@dataclass(frozen=True, slots=True)
class LogWebhookSettings:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    batch_size: int = 500
    retries: int = 5
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class LogSettings:
    requests: bool = False
    """One JSON line per request on the 'polyroute.requests' logger."""
    file: LogFileSettings | None = None
    webhook: LogWebhookSettings | None = None
    queue_size: int = 10_000
    flush_interval_s: float = 1.0

    @property
    def any(self) -> bool:
        return self.requests or self.file is not None or self.webhook is not None


@dataclass(frozen=True, slots=True)
class GuardrailSettings:
    name: str
    type: str
    """'webhook', 'json_schema', 'detectors', 'deny_terms' or 'max_chars'."""
    url: str
    stages: frozenset[str]
    timeout_s: float
    fail_open: bool
    stream: str = "incremental"
    """'incremental' or 'hold'."""
    window_chars: int = 256
    scoped: bool = False
    kinds: frozenset[str] = frozenset()
    """``detectors``: the detector kinds its classes name."""
    action: str = "refuse"
    backend: str = "builtin"
    """``detectors``: 'builtin' or 'presidio'."""
    terms: tuple[str, ...] = ()
    max_chars: int = 0
    uninspectable: str = "refuse"
    """A request carrying what the guardrail cannot read (an uploaded file): 'refuse' it, or
    'allow' it through unchecked."""


@dataclass(frozen=True, slots=True)
class StorageSettings:
    sqlite_path: str
    flush_interval_s: float = 0.5
    flush_batch: int = 500
    postgres_url: str | None = None
    spool_dir: str | None = None
    """None: 'spool' beside sqlite_path."""
    ledger: bool = True
    response_retention_s: float = 30 * 86400.0
    batch_poll_s: float = 60.0


@dataclass(frozen=True, slots=True)
class AuthSettings:
    master_key: str | None = None
    refresh_s: float = 1.0

    def __repr__(self) -> str:  # holds the master key: never print it
        return f"AuthSettings(master_key={'set' if self.master_key else None}, " \
               f"refresh_s={self.refresh_s})"


@dataclass(frozen=True, slots=True)
class LimitsSettings:
    default_max_output_tokens: int = 4096
    lease_ttl_s: float = 30.0
    on_state_outage: str = "open"
    allow_unpriced: bool = False


@dataclass(frozen=True, slots=True)
class StateSettings:
    redis_url: str | None = None
    sync_interval_s: float = 0.5
    timeout_s: float = 0.1


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """See schema.CacheSection."""

    mode: str = "off"
    backend: str = "memory"
    max_bytes: int = 64 * 1024 * 1024
    max_entry_bytes: int = 1024 * 1024
    ttl_s: float = 3600.0
    scope: str = "org"
    semantic_threshold: float = 0.90


@dataclass(frozen=True, slots=True)
class McpSettings:
    """See schema.McpSection."""

    servers: Mapping[str, McpServer] = field(default_factory=dict)
    circuits: Mapping[str, Circuit] = field(default_factory=dict)
    """Each server's circuit breaker settings."""
    max_tool_rounds: int = 8


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    source: str
    server: ServerSettings
    storage: StorageSettings
    groups: Mapping[str, ModelGroup]
    open_vendors: Mapping[str, Endpoint]
    """Vendors that serve '<vendor>/<any model id>' without a configured group."""
    state: StateSettings = StateSettings()
    resilience: Resilience = Resilience()
    """For groups made on the fly ('<vendor>/<model>' and per-request 'models' lists)."""
    auth: AuthSettings = AuthSettings()
    limits: LimitsSettings = LimitsSettings()
    metrics: MetricsSettings = MetricsSettings()
    cache: CacheSettings = CacheSettings()
    tracing: TracingSettings = TracingSettings()
    logs: LogSettings = LogSettings()
    catalog: PriceCatalog | None = field(default=None, repr=False, compare=False)
    """The price catalog the deployments were priced from, read once by the loader; the
    composition root hands this same one to the policy. None (a config built in code): the
    composition root reads the shipped one."""
    guardrails: tuple[GuardrailSettings, ...] = ()
    """External guardrails (webhooks), in name order."""
    caps: ScopeCaps = ScopeCaps()
    """Vendor-share caps per team and organisation (a group's own are on the group)."""
    auto_router: AutoRouter | None = field(default=None, repr=False, compare=False)
    """The auto-router the 'auto' groups were validated against, read once by the loader and
    handed to the engine; None when no group routes auto."""
    mcp: McpSettings = McpSettings()

    @property
    def secrets(self) -> frozenset[str]:
        found = {s for g in self.groups.values() for d in g.deployments for s in d.endpoint.secrets}
        found.update(s for e in self.open_vendors.values() for s in e.secrets)
        if self.auth.master_key:
            found.add(self.auth.master_key)
        if self.storage.postgres_url:
            found.add(self.storage.postgres_url)
        found.update(v for v in self.tracing.headers.values() if v)
        if self.logs.webhook is not None:
            found.update(v for v in self.logs.webhook.headers.values() if v)
        for server in self.mcp.servers.values():
            found.update(v for v in server.headers.values() if v)
        return frozenset(found)
