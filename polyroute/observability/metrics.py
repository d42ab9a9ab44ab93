"""Every Prometheus metric polyroute exports is declared in this file.

The hot path only adds numbers to plain dicts (a few hundred nanoseconds per request, against
tens of microseconds for prometheus_client's labelled children with their locks); the values
become Prometheus metric families when ``/metrics`` is scraped. Everything runs on the event
loop's thread, so no lock is needed. Each gateway owns its registry: no process globals.

Label sets are bounded (issue 10, item 8): model groups and deployments are labels, and for
``<vendor>/<model>`` names the client chooses them. Configured names are always labels; other
names become labels only once a request through them succeeded, at most ``max_model_labels``
of them; everything else is counted under the one label ``OVERFLOW_LABEL``. ``/metrics`` is
rendered from a copy taken on the loop (microseconds: the dicts are bounded), in a thread, so
a scrape never holds the event loop while prometheus_client formats text.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from polyroute.model.record import RequestRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

CONTENT_TYPE = CONTENT_TYPE_LATEST
OVERFLOW_LABEL = "_other"
"""The label of every model group or deployment beyond the bound (see the module docstring)."""
MAX_MODEL_LABELS = 200

Labels = tuple[str, ...]

_EXPORTS = {"trace_spans": "Trace spans", "log_lines": "Request log lines"}
"""What ``Metrics.watch_export`` may watch: the metric name's middle, and its description."""


class Counter:
    def __init__(self, name: str, doc: str, labels: Labels = ()) -> None:
        self.name, self.doc, self.labels = name, doc, labels
        self.values: dict[Labels, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for labels, value in self.values.items():
            family.add_metric(labels, value)
        return family

    def frozen(self) -> Counter:
        """A copy to render while this one keeps counting (one C-level dict copy)."""
        copy = type(self)(self.name, self.doc, self.labels)
        copy.values = dict(self.values)
        return copy


class Gauge(Counter):
    def set(self, value: float, *labels: str) -> None:
        self.values[labels] = value

    def family(self) -> Metric:
        family = GaugeMetricFamily(self.name, self.doc, labels=self.labels)
        for labels, value in self.values.items():
            family.add_metric(labels, value)
        return family


class Histogram:
    def __init__(self, name: str, doc: str, labels: Labels = (),
                 buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name, self.doc, self.labels, self.buckets = name, doc, labels, buckets
        # Per label set: one count per bucket, one for +Inf, then the sum.
        self.values: dict[Labels, list[float]] = {}

    def observe(self, value: float, *labels: str) -> None:
        slots = self.values.get(labels)
        if slots is None:
            slots = self.values[labels] = [0.0] * (len(self.buckets) + 2)
        slots[bisect_left(self.buckets, value)] += 1
        slots[-1] += value

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        edges = [*(f"{b:g}" for b in self.buckets), "+Inf"]
        for labels, slots in self.values.items():
            cumulative, running = [], 0.0
            for edge, count in zip(edges, slots[:-1], strict=True):
                running += count
                cumulative.append((edge, running))
            family.add_metric(labels, cumulative, sum_value=slots[-1])
        return family

    def frozen(self) -> Histogram:
        copy = Histogram(self.name, self.doc, self.labels, self.buckets)
        copy.values = {labels: list(slots) for labels, slots in list(self.values.items())}
        return copy


class _Frozen(Collector):
    def __init__(self, metrics: list[Counter | Histogram]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for metric in self._metrics:
            yield metric.family()


_REFUSED_TOOL_CALLS = frozenset({"unknown_tool", "permission_denied", "tool_refused"})


class Metrics(Collector):
    def __init__(self, model_groups: Iterable[str] = (), deployments: Iterable[str] = (),
                 max_model_labels: int = MAX_MODEL_LABELS) -> None:
        self._known_groups = frozenset(model_groups)
        self._known_deployments = frozenset(deployments)
        self._learned: set[str] = set()
        """Client-chosen names admitted as labels (after a success), at most ``_max_learned``."""
        self._max_learned = max_model_labels
        self.requests = Counter(
            "polyroute_requests", "Requests answered, by endpoint, model group and HTTP status.",
            ("endpoint", "model_group", "status"))
        self.request_duration = Histogram(
            "polyroute_request_duration_seconds", "Time from request to the end of the answer.",
            ("endpoint", "model_group"))
        self.ttft = Histogram(
            "polyroute_time_to_first_token_seconds", "Time to the first streamed chunk.",
            ("model_group",))
        self.attempts = Counter(
            "polyroute_upstream_attempts", "Upstream attempts, by deployment and outcome.",
            ("vendor", "deployment", "outcome"))
        self.attempt_duration = Histogram(
            "polyroute_upstream_attempt_duration_seconds",
            "Time an upstream attempt took until it answered (first chunk for streams) or failed.",
            ("vendor", "deployment"))
        self.errors = Counter(
            "polyroute_errors", "Requests that ended in an error, by error class.",
            ("endpoint", "error_class"))
        self.tokens = Counter(
            "polyroute_tokens", "Tokens reported by upstreams, by kind.",
            ("model_group", "vendor", "kind"))
        self.media_units = Counter(
            "polyroute_media_units", "Units media requests were billed by (images, seconds of "
            "audio, characters spoken, rerank searches), by kind.",
            ("model_group", "vendor", "unit"))
        self.route_decisions = Counter(
            "polyroute_route_decisions",
            "Requests routed by a strategy that reads the room (or by tags), by model group "
            "and '<strategy>/<why>' (least_latency/fastest, least_latency/explore, "
            "quota/headroom, quota/shed, least_busy/least_busy, cost/cheapest, …).",
            ("model_group", "decision"))
        self.cache_requests = Counter(
            "polyroute_cache_requests",
            "Chat requests to groups with a response cache, by result: hit, semantic (a hit "
            "for a close enough question), miss, bypass.",
            ("model_group", "result"))
        self.cache_saved_usd = Counter(
            "polyroute_cache_saved_usd",
            "USD that cache hits would have cost upstream (priced as the stored answer was).",
            ("model_group",))
        self.spend = Counter(
            "polyroute_spend_usd", "What requests cost (USD, as the ledger records it), by "
            "model group and vendor.", ("model_group", "vendor"))
        self.mcp_tool_calls = Counter(
            "polyroute_mcp_tool_calls",
            "MCP tool calls through /mcp and chat requests, by server, tool and outcome "
            "('ok' or the error class; refused calls have tool '(refused)').",
            ("server", "tool", "outcome"))
        self.mcp_tool_duration = Histogram(
            "polyroute_mcp_tool_call_duration_seconds", "Time an MCP tool call took.",
            ("server", "tool"))
        self.circuit_transitions = Counter(
            "polyroute_circuit_transitions",
            "Circuit breaker transitions, by upstream and the state entered.", ("upstream", "to"))
        # Vendor independence (issue 14): measured from the ledger by a background task
        # (independence/publish.py), replaced whole each time.
        self.dependence_share = Gauge(
            "polyroute_dependence_share",
            "Share of answered requests (kind=requests), tokens or spend served by a "
            "supplier (a vendor, cloud or region), per scope, over metrics.independence_window_s.",
            ("scope", "scope_name", "dimension", "supplier", "kind"))
        self.dependence_hhi = Gauge(
            "polyroute_dependence_hhi",
            "Herfindahl-Hirschman index of those shares (10000: one supplier).",
            ("scope", "scope_name", "dimension", "kind"))
        self.dependence_captive_requests = Gauge(
            "polyroute_dependence_captive_requests",
            "Answered requests that used a capability no other vendor in their group offers.",
            ("model_group", "vendor"))
        self._probes: list[tuple[Gauge, Callable[[], float]]] = []
        self._labelled: list[tuple[Counter, Callable[[], Mapping[Labels, float]]]] = []
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def know(self, model_groups: Iterable[str], deployments: Iterable[str]) -> None:
        """A reloaded config's groups and deployments are labels too (the old ones stay)."""
        self._known_groups = self._known_groups | frozenset(model_groups)
        self._known_deployments = self._known_deployments | frozenset(deployments)

    def watch_ledger(self, backlog_bytes: Callable[[], float], written: Callable[[], float],
                     failing: Callable[[], float], quarantined: Callable[[], float]) -> None:
        """The spend ledger's state, read when /metrics is scraped."""
        self._probe("polyroute_ledger_backlog_bytes",
                    "Spooled ledger bytes not yet in the database.", backlog_bytes)
        self._probe("polyroute_ledger_written_records",
                    "Ledger records this process wrote to the database.", written)
        self._probe("polyroute_ledger_store_failing",
                    "1 while the ledger's database is unreachable (records wait in the spool).",
                    failing)
        self._probe("polyroute_ledger_quarantined_records",
                    "Ledger records the database refused (e.g. a NUL byte), moved to the "
                    "spool directory's quarantine.jsonl instead of blocking the rest.",
                    quarantined)

    def watch_cache(self, stored_bytes: Callable[[], float],
                    errors: Callable[[], float]) -> None:
        """The response cache's backend, read when /metrics is scraped."""
        self._probe("polyroute_cache_bytes",
                    "Bytes of answers the in-process response cache holds (0: Redis).",
                    stored_bytes)
        self._probe("polyroute_cache_backend_errors",
                    "Response-cache backend calls that failed (each served as a miss).", errors)
        self._probe("polyroute_cache_hit_ratio",
                    "Hits / (hits + misses) since start, over every group (bypasses left out).",
                    self._hit_ratio)

    def _hit_ratio(self) -> float:
        hits = misses = 0.0
        for (_, result), count in self.cache_requests.values.items():
            if result in ("hit", "semantic"):
                hits += count
            elif result == "miss":
                misses += count
        return hits / (hits + misses) if hits + misses else 0.0

    def watch_directory(self, quarantined: Callable[[], float]) -> None:
        self._probe("polyroute_directory_quarantined_rows",
                    "Key, team and organisation rows the key directory cannot read; the keys "
                    "that depend on them are refused until they are repaired.", quarantined)

    def watch_connections(self, open_now: Callable[[], float],
                          refused: Callable[[], float]) -> None:
        """The listener's connection counts, read when /metrics is scraped."""
        self._probe("polyroute_connections_open", "Client connections open now.", open_now)
        self._probe("polyroute_connections_refused",
                    "Client connections closed at once (503) since start because "
                    "server.max_connections or max_connections_per_ip was reached.", refused)

    def watch_export(self, what: str, sent: Callable[[], float], dropped: Callable[[], float],
                     failed: Callable[[], float],
                     requeued: Callable[[], float] | None = None) -> None:
        """An export sink's counts (``what``: 'trace_spans' or 'log_lines'), read on scrape."""
        if requeued is not None:
            self._probe(f"polyroute_{what}_requeued",
                        f"{_EXPORTS[what]} put back in the export queue since start because "
                        f"their export failed after retries (tried again at the next flush).",
                        requeued)
        self._probe(f"polyroute_{what}_exported", f"{_EXPORTS[what]} sent since start.", sent)
        self._probe(f"polyroute_{what}_dropped",
                    f"{_EXPORTS[what]} dropped since start because the export queue was full.",
                    dropped)
        self._probe(f"polyroute_{what}_failed",
                    f"{_EXPORTS[what]} whose export failed (after retries) since start.", failed)

    def circuit_transition(self, upstream: str, before: str, after: str, at: float) -> None:
        """A breaker's ``on_transition`` callback."""
        self.circuit_transitions.inc(upstream, after)

    def watch_circuits(self, states: Callable[[], Mapping[Labels, float]]) -> None:
        """(upstream,) → 0 closed, 1 half open, 2 open; read on scrape."""
        self._labelled.append((Gauge(
            "polyroute_circuit_state",
            "Circuit breaker state per upstream: 0 closed, 1 half open (probing), 2 open.",
            ("upstream",)), states))

    def watch_budgets(self, used: Callable[[], Mapping[Labels, float]]) -> None:
        """(scope, period) → the share of the budget spent (1.0: all of it)."""
        self._labelled.append((Gauge(
            "polyroute_budget_used_ratio",
            "Spend over budget per scope ('k:', 't:', 'o:' + id) and period (day, month, "
            "total), for scopes with a budget; refreshed every few seconds.",
            ("scope", "period")), used))

    def watch_vendor_caps(self, unmet: Callable[[], Mapping[Labels, float]],
                          steered: Callable[[], Mapping[Labels, float]],
                          shares: Callable[[], Mapping[Labels, float]],
                          shared: Callable[[], bool | None]) -> None:
        """The vendor-share caps (issue 14): (scope, vendor) tallies and shares, read on
        scrape; ``scope`` is 'group:NAME', 'team:ID' or 'org:ID'."""
        self._labelled.append((Counter(
            "polyroute_vendor_cap_unmet",
            "Requests routed above a vendor-share cap (or short of min_vendors) because no "
            "deployment of a vendor under it could take them, by scope and vendor.",
            ("scope", "vendor")), unmet))
        self._labelled.append((Counter(
            "polyroute_vendor_cap_steered",
            "Requests moved off a vendor (to the cheapest under the cap) to keep a scope's "
            "vendor-share caps, by scope and vendor.", ("scope", "vendor")), steered))
        self._labelled.append((Gauge(
            "polyroute_vendor_cap_share",
            "A vendor's share of a capped scope's answered requests over its window, every "
            "replica's counted as last synced.", ("scope", "vendor")), shares))
        self._probe("polyroute_vendor_caps_shared",
                    "1 while the caps' windows are summed over replicas through Redis; 0 while "
                    "Redis is unreachable (each replica caps its own traffic) or not configured.",
                    lambda: float(bool(shared())))

    def watch_state_store(self, healthy: Callable[[], float]) -> None:
        self._probe("polyroute_state_store_up",
                    "1 while the shared state store (Redis) answers, or when limits are kept "
                    "in process; 0 while it is down.", healthy)

    def _probe(self, name: str, doc: str, read: Callable[[], float]) -> None:
        self._probes.append((Gauge(name, doc), read))

    def _group_label(self, name: str, succeeded: bool) -> str:
        if name in self._known_groups or name in self._learned or not name:
            return name
        if succeeded and len(self._learned) < self._max_learned:
            self._learned.add(name)
            return name
        return OVERFLOW_LABEL

    def _deployment_label(self, name: str) -> str:
        # An open vendor's deployment is named after the client's '<vendor>/<model>'.
        if name in self._known_deployments or name in self._learned:
            return name
        return OVERFLOW_LABEL

    def observe(self, record: RequestRecord) -> None:
        if record.endpoint == "mcp":
            self._observe_tool_call(record)
            return
        group = self._group_label(record.model_group or "", record.error_class is None)
        endpoint = record.endpoint
        self.requests.inc(endpoint, group, str(record.status))
        self.request_duration.observe(record.latency_s, endpoint, group)
        if record.ttft_s is not None:
            self.ttft.observe(record.ttft_s, group)
        if record.error_class is not None:
            self.errors.inc(endpoint, record.error_class)
        if record.route_kind is not None:
            self.route_decisions.inc(group, record.route_kind)
        if record.cache is not None:
            self.cache_requests.inc(group, record.cache)
            if record.saved_usd:
                self.cache_saved_usd.inc(group, amount=record.saved_usd)
        for attempt in record.attempts:
            deployment = self._deployment_label(attempt.deployment)
            self.attempts.inc(attempt.vendor, deployment, attempt.error_class or "ok")
            self.attempt_duration.observe(attempt.latency_s, attempt.vendor, deployment)
        if record.cost_usd:
            self.spend.inc(group, record.vendor or "", amount=record.cost_usd)
        units = record.units
        if units is not None and units.quantity and record.error_class is None:
            # The kind only ('image', not 'image:1024x1024:hd'): sizes are the client's to
            # choose, and a label must stay bounded.
            self.media_units.inc(group, record.vendor or "", units.unit.partition(":")[0],
                                 amount=units.quantity)
        usage = record.usage
        if usage is not None:
            vendor = record.vendor or ""
            self.tokens.inc(group, vendor, "prompt", amount=usage.prompt_tokens)
            self.tokens.inc(group, vendor, "completion", amount=usage.completion_tokens)
            if usage.cached_tokens:
                self.tokens.inc(group, vendor, "cached", amount=usage.cached_tokens)
            if usage.reasoning_tokens:
                self.tokens.inc(group, vendor, "reasoning", amount=usage.reasoning_tokens)

    def _observe_tool_call(self, record: RequestRecord) -> None:
        """Labels only what a server listed: a refused name (unknown, not allowed) is
        '(refused)', so callers cannot mint label values."""
        refused = record.error_class in _REFUSED_TOOL_CALLS
        server = record.deployment or "(none)"
        tool = "(refused)" if refused else record.upstream_model or ""
        self.mcp_tool_calls.inc(server, tool, record.error_class or "ok")
        if not refused:
            self.mcp_tool_duration.observe(record.latency_s, server, tool)

    def collect(self) -> Iterator[Metric]:
        for metric in vars(self).values():
            if isinstance(metric, (Counter, Histogram)):
                yield metric.family()
        for gauge, read in self._probes:
            gauge.set(float(read()))
            yield gauge.family()
        for metric, read_all in self._labelled:
            metric.values = {labels: float(v) for labels, v in read_all().items()}
            yield metric.family()

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def freeze(self) -> Callable[[], bytes]:
        """Copy every value now (on the event loop), and return a function that renders the
        copy: safe to run in a thread while requests keep counting."""
        frozen: list[Counter | Histogram] = [
            m.frozen() for m in vars(self).values() if isinstance(m, (Counter, Histogram))]
        for gauge, read in self._probes:
            gauge.set(float(read()))
            frozen.append(gauge.frozen())
        for metric, read_all in self._labelled:
            metric.values = {labels: float(v) for labels, v in read_all().items()}
            frozen.append(metric.frozen())
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Frozen(frozen))
        return partial(generate_latest, registry)
