"""What the deployments are doing right now, as the routing strategies read it: how fast each
answers (an exponentially weighted estimate), how many requests each has in flight (here, and
on other replicas when a shared store is wired in), and how much of its quota is left (the
vendor's ``x-ratelimit-*`` headers and the requests sent in the last minute).

Keyed by deployment name: the transport reports headers under that name. One ``Room`` per
gateway, kept across config reloads, so a deployment that stays keeps what was learnt of it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from polyroute.engine.ratelimit_headers import VendorQuota, read_quota

_WINDOW_S = 60


@dataclass(slots=True)
class _Sent:
    """Requests sent to one deployment, in one-second buckets over the last minute."""

    seconds: list[int] = field(default_factory=lambda: [-1] * _WINDOW_S)
    requests: list[int] = field(default_factory=lambda: [0] * _WINDOW_S)
    tokens: list[int] = field(default_factory=lambda: [0] * _WINDOW_S)

    def add(self, second: int, tokens: int) -> None:
        slot = second % _WINDOW_S
        if self.seconds[slot] != second:
            self.seconds[slot], self.requests[slot], self.tokens[slot] = second, 0, 0
        self.requests[slot] += 1
        self.tokens[slot] += tokens

    def totals(self, second: int) -> tuple[int, int]:
        oldest = second - _WINDOW_S
        live = [i for i, s in enumerate(self.seconds) if s > oldest]
        return sum(self.requests[i] for i in live), sum(self.tokens[i] for i in live)


class Room:
    def __init__(self, alpha: float = 0.3, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self.alpha = alpha
        self._latency: dict[tuple[str, bool], float] = {}
        self._busy: Counter[str] = Counter()
        self._others: Mapping[str, int] = {}
        """In flight on other replicas, as the shared store last said."""
        self._quota: dict[str, VendorQuota] = {}
        self.watch_headers = True
        """Read vendors' rate-limit headers; the router turns it off when no group routes by
        quota (nothing else reads them)."""
        self._sent: dict[str, _Sent] = {}

    # -- latency ------------------------------------------------------------------------
    def observe_latency(self, deployment: str, seconds: float, stream: bool,
                        alpha: float | None = None) -> None:
        """One successful attempt: time to first content (streams) or the whole answer."""
        key = (deployment, stream)
        known = self._latency.get(key)
        self._latency[key] = seconds if known is None else known + (
            self.alpha if alpha is None else alpha) * (seconds - known)

    def latency(self, deployment: str, stream: bool) -> float | None:
        """The estimate in seconds, None before the first answer."""
        return self._latency.get((deployment, stream))

    # -- in flight ----------------------------------------------------------------------
    def begin(self, deployment: str, tokens: int = 0) -> None:
        self._busy[deployment] += 1
        sent = self._sent.get(deployment)
        if sent is None:
            sent = self._sent[deployment] = _Sent()
        sent.add(int(self._wall()), tokens)

    def end(self, deployment: str) -> None:
        left = self._busy[deployment] - 1
        if left > 0:
            self._busy[deployment] = left
        else:
            del self._busy[deployment]

    def busy(self, deployment: str) -> int:
        """Requests in flight on ``deployment``, this replica's now and others' as last synced."""
        return self._busy.get(deployment, 0) + self._others.get(deployment, 0)

    def local_busy(self) -> dict[str, int]:
        return dict(self._busy)

    def adopt_others(self, others: Mapping[str, int]) -> None:
        self._others = others

    def holder(self, stream: bool = False, alpha: float | None = None,
               tokens: int = 0) -> Holder:
        return Holder(self, stream, alpha, tokens)

    # -- quota --------------------------------------------------------------------------
    def observe_headers(self, deployment: str, headers: Mapping[str, str]) -> None:
        """An upstream's answer (any status): keep what its rate-limit headers say."""
        if not self.watch_headers:
            return
        quota = read_quota(headers, self._wall())
        if quota is not None:
            self._quota[deployment] = quota

    def headroom(self, deployment: str, rpm: int | None, tpm: int | None) -> float:
        """The share of the deployment's quota left, in [0, 1]: the least of what its own
        headers said (until their reset passes) and of the configured per-minute limits
        against what this replica sent in the last minute. 1.0: nothing is known."""
        now = self._wall()
        shares = [1.0]
        quota = self._quota.get(deployment)
        if quota is not None:
            shares.extend(quota.shares(now, rpm, tpm))
        if rpm or tpm:
            sent = self._sent.get(deployment)
            if sent is not None:
                requests, tokens = sent.totals(int(now))
                if rpm:
                    shares.append(1.0 - requests / rpm)
                if tpm:
                    shares.append(1.0 - tokens / tpm)
        return max(0.0, min(shares))

    def forget(self, keep: Iterable[str]) -> None:
        """After a reload: drop what is known of deployments that are gone."""
        kept = set(keep)
        self._latency = {k: v for k, v in self._latency.items() if k[0] in kept}
        self._quota = {k: v for k, v in self._quota.items() if k in kept}
        self._sent = {k: v for k, v in self._sent.items() if k in kept}


class Holder:
    """One request's hold on the deployment serving it: counted in flight from the attempt's
    start until the request settles (a stream: until it ends); failed attempts let go at once.
    Each success teaches the room that deployment's latency."""

    __slots__ = ("_alpha", "_held", "_room", "_stream", "_tokens")

    def __init__(self, room: Room, stream: bool, alpha: float | None, tokens: int) -> None:
        self._room = room
        self._stream = stream
        self._alpha = alpha
        self._tokens = tokens
        self._held: str | None = None

    def begin(self, deployment: str) -> None:
        self._room.begin(deployment, self._tokens)

    def failed(self, deployment: str) -> None:
        self._room.end(deployment)

    def succeeded(self, deployment: str, seconds: float) -> None:
        self._room.observe_latency(deployment, seconds, self._stream, self._alpha)
        if self._held is not None:  # a resumed stream's broken attempt
            self._room.end(self._held)
        self._held = deployment

    def release(self) -> None:
        if self._held is not None:
            self._room.end(self._held)
            self._held = None
