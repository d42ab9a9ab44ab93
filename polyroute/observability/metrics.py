"""Every Prometheus metric polyroute exports is declared in this file.

Each gateway owns its own registry (no process globals), so tests and several apps in one
process never collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from polyroute.model.record import RequestRecord

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "polyroute_requests", "Requests answered, by endpoint, model group and HTTP status.",
            ["endpoint", "model_group", "status"], registry=r)
        self.request_duration = Histogram(
            "polyroute_request_duration_seconds", "Time from request to the end of the answer.",
            ["endpoint", "model_group"], buckets=_LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram(
            "polyroute_time_to_first_token_seconds", "Time to the first streamed chunk.",
            ["model_group"], buckets=_LATENCY_BUCKETS, registry=r)
        self.attempts = Counter(
            "polyroute_upstream_attempts", "Upstream attempts, by deployment and outcome.",
            ["vendor", "deployment", "outcome"], registry=r)
        self.attempt_duration = Histogram(
            "polyroute_upstream_attempt_duration_seconds",
            "Time an upstream attempt took until it answered (first chunk for streams) or failed.",
            ["vendor", "deployment"], buckets=_LATENCY_BUCKETS, registry=r)
        self.errors = Counter(
            "polyroute_errors", "Requests that ended in an error, by error class.",
            ["endpoint", "error_class"], registry=r)
        self.tokens = Counter(
            "polyroute_tokens", "Tokens reported by upstreams, by kind.",
            ["model_group", "vendor", "kind"], registry=r)
        self.request_log_pending = Gauge(
            "polyroute_request_log_pending", "Request-log rows waiting to be written.",
            registry=r)
        self.request_log_dropped = Counter(
            "polyroute_request_log_dropped",
            "Request-log rows dropped because the queue was full.", registry=r)
        self.request_log_written = Counter(
            "polyroute_request_log_written", "Request-log rows written to storage.", registry=r)

    def observe(self, record: RequestRecord) -> None:
        group = record.model_group or ""
        self.requests.labels(record.endpoint, group, str(record.status)).inc()
        self.request_duration.labels(record.endpoint, group).observe(record.latency_s)
        if record.ttft_s is not None:
            self.ttft.labels(group).observe(record.ttft_s)
        if record.error_class is not None:
            self.errors.labels(record.endpoint, record.error_class).inc()
        for attempt in record.attempts:
            self.attempts.labels(attempt.vendor, attempt.deployment,
                                 attempt.error_class or "ok").inc()
            self.attempt_duration.labels(attempt.vendor, attempt.deployment).observe(
                attempt.latency_s)
        usage = record.usage
        if usage is not None:
            vendor = record.vendor or ""
            self.tokens.labels(group, vendor, "prompt").inc(usage.prompt_tokens)
            self.tokens.labels(group, vendor, "completion").inc(usage.completion_tokens)
            if usage.cached_tokens:
                self.tokens.labels(group, vendor, "cached").inc(usage.cached_tokens)
            if usage.reasoning_tokens:
                self.tokens.labels(group, vendor, "reasoning").inc(usage.reasoning_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
