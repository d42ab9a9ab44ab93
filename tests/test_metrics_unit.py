"""The in-process metric types render what Prometheus expects."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from polyroute.model.record import Attempt, RequestRecord
from polyroute.model.usage import Usage
from polyroute.observability.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_histogram_buckets_are_cumulative_and_le_inclusive() -> None:
    m = Metrics()
    for latency in (0.005, 0.02, 7.0, 1000.0):
        m.observe(RequestRecord("r", 0, "chat", "g", model_group="g", latency_s=latency))
    got = samples(m)

    def bucket(le: str) -> float:
        key = ("polyroute_request_duration_seconds_bucket",
               (("endpoint", "chat"), ("le", le), ("model_group", "g")))
        return got[key]

    assert bucket("0.005") == 1  # le is inclusive
    assert bucket("0.025") == 2
    assert bucket("10") == 3
    assert bucket("+Inf") == 4
    assert got[("polyroute_request_duration_seconds_count",
                (("endpoint", "chat"), ("model_group", "g")))] == 4
    assert got[("polyroute_request_duration_seconds_sum",
                (("endpoint", "chat"), ("model_group", "g")))] == 1007.025


def test_counters_by_label() -> None:
    m = Metrics(model_groups=("g",), deployments=("d1", "d2"))
    record = RequestRecord("r", 0, "chat", "g", model_group="g", vendor="v", status=200,
                           attempts=[Attempt("d1", "v", 0.1, "upstream_timeout", 504),
                                     Attempt("d2", "v", 0.1)],
                           usage=Usage(prompt_tokens=3, completion_tokens=5))
    m.observe(record)
    m.observe(record)
    got = samples(m)
    assert got[("polyroute_requests_total",
                (("endpoint", "chat"), ("model_group", "g"), ("status", "200")))] == 2
    assert got[("polyroute_upstream_attempts_total",
                (("deployment", "d1"), ("outcome", "upstream_timeout"), ("vendor", "v")))] == 2
    assert got[("polyroute_tokens_total",
                (("kind", "completion"), ("model_group", "g"), ("vendor", "v")))] == 10
