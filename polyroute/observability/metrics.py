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
from collections.abc import Callable, Iterable, Iterator
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
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

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
        group = self._group_label(record.model_group or "", record.error_class is None)
        endpoint = record.endpoint
        self.requests.inc(endpoint, group, str(record.status))
        self.request_duration.observe(record.latency_s, endpoint, group)
        if record.ttft_s is not None:
            self.ttft.observe(record.ttft_s, group)
        if record.error_class is not None:
            self.errors.inc(endpoint, record.error_class)
        for attempt in record.attempts:
            deployment = self._deployment_label(attempt.deployment)
            self.attempts.inc(attempt.vendor, deployment, attempt.error_class or "ok")
            self.attempt_duration.observe(attempt.latency_s, attempt.vendor, deployment)
        usage = record.usage
        if usage is not None:
            vendor = record.vendor or ""
            self.tokens.inc(group, vendor, "prompt", amount=usage.prompt_tokens)
            self.tokens.inc(group, vendor, "completion", amount=usage.completion_tokens)
            if usage.cached_tokens:
                self.tokens.inc(group, vendor, "cached", amount=usage.cached_tokens)
            if usage.reasoning_tokens:
                self.tokens.inc(group, vendor, "reasoning", amount=usage.reasoning_tokens)

    def collect(self) -> Iterator[Metric]:
        for metric in vars(self).values():
            if isinstance(metric, (Counter, Histogram)):
                yield metric.family()
        for gauge, read in self._probes:
            gauge.set(float(read()))
            yield gauge.family()

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
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Frozen(frozen))
        return partial(generate_latest, registry)
