"""Circuit-breaker transitions, driven by a fake clock."""

from __future__ import annotations

from polyroute.config.compiled import Circuit
from polyroute.engine.circuit import Breakers
from polyroute.errors import UpstreamRateLimited, UpstreamRejected, UpstreamUnavailable

SETTINGS = Circuit(enabled=True, failures=3, window_s=10, cooldown_s=5)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_opens_after_failures_in_window_then_one_probe() -> None:
    clock = Clock()
    b = Breakers(clock)
    err = UpstreamUnavailable("down")
    b.failure("u", err, SETTINGS)
    clock.now += 11  # the first failure leaves the window
    b.failure("u", err, SETTINGS)
    b.success("u")  # a success does not reset the count while closed
    b.failure("u", err, SETTINGS)
    assert await b.allow("u")
    b.failure("u", err, SETTINGS)
    assert b.state("u") == "open" and not await b.allow("u")
    clock.now += 5
    assert await b.allow("u")  # the probe
    assert b.state("u") == "half_open"
    assert not await b.allow("u")  # exactly one
    b.failure("u", err, SETTINGS)  # the probe failed: open again for a full cool-down
    assert b.state("u") == "open"
    clock.now += 4.9
    assert not await b.allow("u")
    clock.now += 0.2
    assert await b.allow("u")
    b.success("u")
    assert b.state("u") == "closed" and await b.allow("u")
    assert [h[1:3] for h in b.history] == [
        ("closed", "open"), ("open", "half_open"), ("half_open", "open"),
        ("open", "half_open"), ("half_open", "closed")]


async def test_rate_limit_pauses_for_retry_after_and_client_errors_do_not_count() -> None:
    clock = Clock()
    b = Breakers(clock)
    b.failure("u", UpstreamRateLimited("slow down", retry_after=2.0), SETTINGS)
    assert not await b.allow("u")
    clock.now += 2.0
    assert await b.allow("u")
    b.success("u")
    for _ in range(10):
        b.failure("u", UpstreamRejected("bad request"), SETTINGS)
    assert b.state("u") == "closed"


async def test_a_late_success_does_not_close_an_open_circuit() -> None:
    clock = Clock()
    b = Breakers(clock)
    for _ in range(3):
        b.failure("u", UpstreamUnavailable("down"), SETTINGS)
    b.success("u")  # an answer that started before the circuit opened
    assert b.state("u") == "open"


async def test_disabled_circuit_never_opens() -> None:
    b = Breakers(Clock())
    off = Circuit(enabled=False)
    for _ in range(50):
        b.failure("u", UpstreamUnavailable("down"), off)
    assert await b.allow("u")


RATE = Circuit(enabled=True, failures=5, failure_rate=0.5, request_volume=10, window_s=30,
               cooldown_s=5)


async def test_a_deployment_failing_now_and_then_stays_closed() -> None:
    clock = Clock()
    b = Breakers(clock)
    for _ in range(100):  # one request in three fails: 33 % < 50 %
        b.failure("u", UpstreamUnavailable("down"), RATE)
        b.success("u", RATE)
        b.success("u", RATE)
        clock.now += 0.1
    assert b.state("u") == "closed"


async def test_a_healthy_past_does_not_delay_opening() -> None:
    """Only the last request_volume requests count: after 1000 successes, five failed
    requests in the last ten open the circuit."""
    clock = Clock()
    b = Breakers(clock)
    for _ in range(1000):
        b.success("u", RATE)
    for _ in range(4):
        b.failure("u", UpstreamUnavailable("down"), RATE)
    assert b.state("u") == "closed"
    b.failure("u", UpstreamUnavailable("down"), RATE)
    assert b.state("u") == "open"
    assert not b.paused("u")  # opened on failures: panic mode may still use it
    assert not b.flaky("u", RATE)  # every answer came before every failure: dead
    clock.now += 0.1
    b.success("u", RATE)  # a panic attempt got through: flaky, not dead
    assert b.flaky("u", RATE) and b.state("u") == "open"


async def test_retries_of_one_request_are_one_piece_of_evidence() -> None:
    clock = Clock()
    b = Breakers(clock)
    err = UpstreamUnavailable("down")
    for _ in range(4):  # four requests, each failing three times
        b.failure("u", err, RATE)
        b.failure("u", err, RATE, counted=False)
        b.failure("u", err, RATE, counted=False)
    assert b.state("u") == "closed"
    b.success("u", RATE)
    b.failure("u", err, RATE)  # the fifth request
    assert b.state("u") == "open"
    assert b.flaky("u", RATE)  # it answered between failures
    clock.now += 5
    assert await b.allow("u")  # the probe ...
    b.failure("u", err, RATE, counted=False)  # ... fails on a retry: still its verdict
    assert b.state("u") == "open"


async def test_a_429_pause_is_marked_and_never_shortens_a_cool_down() -> None:
    clock = Clock()
    b = Breakers(clock)
    b.failure("u", UpstreamRateLimited("slow down", retry_after=2.0), RATE)
    assert b.paused("u") and b.reopens_in(["u"]) == 2.0
    for _ in range(5):
        b.failure("v", UpstreamUnavailable("down"), RATE)
    b.failure("v", UpstreamRateLimited("slow down", retry_after=1.0), RATE)
    assert not b.paused("v") and b.reopens_in(["v"]) == 5.0
    assert b.last_failure("v") == clock.now and b.last_failure("never") == float("-inf")


async def test_client_chosen_upstreams_cannot_exhaust_memory() -> None:
    b = Breakers(Clock())
    b.track(["configured"])
    for i in range(10_000):
        b.success(f"vendor/model-{i}", RATE)
    assert len(b._states) <= 4097 + 1
    assert "configured" in b._states


async def test_more_failures_than_the_volume_still_open() -> None:
    """failures above request_volume widen the window rather than never opening."""
    b = Breakers(Clock())
    many = Circuit(enabled=True, failures=20, request_volume=10, window_s=30, cooldown_s=5)
    for _ in range(19):
        b.failure("u", UpstreamUnavailable("down"), many)
    assert b.state("u") == "closed"
    b.failure("u", UpstreamUnavailable("down"), many)
    assert b.state("u") == "open"
