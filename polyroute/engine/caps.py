"""Vendor-share caps enforced by routing (issue 14, item 4).

A scope — a model group, a team, an organisation — may cap any vendor's share of its answered
requests over a sliding window (``max_share``), and a group may ask that at least
``min_vendors`` vendors answer some of its requests in every window. Steering happens on the
ordered candidates, after the group's strategy: when the first choice's vendor is above a cap
of any scope the request belongs to, the cheapest equivalent deployment of the group whose
vendor is under every cap goes first (the least extra cost); the rest keep their order, so
failover is unchanged. When no such deployment exists the cap cannot be met: the request goes
as ordered and is counted in ``unmet``.

What is counted is the vendor that *answered* (``served``, called by the gateway when an
attempt succeeded), not the first choice. Each scope's window is kept as time buckets (it
slides in steps of ``window_s / BUCKETS``). Other replicas' windows arrive through
``adopt_others`` (the app's background sync, through Redis: ``state/redis_busy.py``), never on
the request path; steering reads this replica's live counts plus the others' last published
ones. One object lives for the whole process: a reload hands it to the new router (``use``),
so the windows survive it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from polyroute.config import Deployment, GatewayConfig
from polyroute.config.compiled import VendorCaps

BUCKETS = 20
"""A window is this many time buckets: it slides in steps of window_s / BUCKETS."""
ANY = "*"
"""The team or organisation id that caps every one not named."""
_SEP = "\x1f"
"""Between scope and vendor in a published count's name (neither contains it)."""

Steer = tuple[list[Deployment], str, str]
"""The new order, the decision kind (``caps/steered``, ``caps/unmet``) and its reason."""


class _Window:
    """One scope's answered requests per vendor over its window, in time buckets."""

    __slots__ = ("buckets", "counts", "total", "window_s")

    def __init__(self, window_s: float) -> None:
        self.buckets: deque[tuple[float, dict[str, int]]] = deque()
        self.counts: dict[str, int] = {}
        self.total = 0
        self.window_s = window_s

    def slide(self, now: float) -> None:
        buckets = self.buckets
        while buckets and buckets[0][0] <= now - self.window_s:
            for vendor, n in buckets.popleft()[1].items():
                self.counts[vendor] -= n
                self.total -= n

    def add(self, now: float, vendor: str) -> None:
        buckets = self.buckets
        if not buckets or now >= buckets[-1][0] + self.window_s / BUCKETS:
            buckets.append((now, {}))
        bucket = buckets[-1][1]
        bucket[vendor] = bucket.get(vendor, 0) + 1
        self.counts[vendor] = self.counts.get(vendor, 0) + 1
        self.total += 1


class ShareCaps:
    def __init__(self, config: GatewayConfig | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._others: dict[str, tuple[dict[str, int], int]] = {}
        """Scope → (vendor → answered requests, total) of the other replicas, as last synced."""
        self._groups: Mapping[str, list[tuple[str, VendorCaps]]] = {}
        """Group → its one scope (label, caps), built once: most requests have only it."""
        self._teams: Mapping[str, VendorCaps] = {}
        self._orgs: Mapping[str, VendorCaps] = {}
        self.active = False
        """Any cap configured: when not, the gateway never calls in (caps off cost nothing)."""
        self.unmet: dict[tuple[str, str], int] = {}
        """(scope, vendor) → requests routed above that cap: no vendor under it could take
        them."""
        self.steered: dict[tuple[str, str], int] = {}
        """(scope, vendor) → requests moved off that vendor to keep the scope's caps."""
        self.shared: bool | None = None
        """None: windows of this process only; True: summed with the other replicas' through
        Redis; False: Redis unreachable, this replica's own counts only (degraded)."""
        if config is not None:
            self.use(config)

    def use(self, config: GatewayConfig) -> None:
        """The caps of a (reloaded) config; the windows are kept."""
        self._groups = {name: [(f"group:{name}", g.caps)] for name, g in config.groups.items()
                        if g.caps is not None}
        self._teams, self._orgs = config.caps.teams, config.caps.orgs
        self.active = bool(self._groups or self._teams or self._orgs)

    def scopes(self, group: str, team: str | None,
               org: str | None) -> list[tuple[str, VendorCaps]]:
        """The caps a request of ``group`` from ``team`` and ``org`` is under, by scope."""
        own = self._groups.get(group)
        if not ((team is not None and self._teams) or (org is not None and self._orgs)):
            return own or []
        found = list(own or ())
        if team is not None and self._teams:
            caps = self._teams.get(team) or self._teams.get(ANY)
            if caps is not None:
                found.append((f"team:{team}", caps))
        if org is not None and self._orgs:
            caps = self._orgs.get(org) or self._orgs.get(ANY)
            if caps is not None:
                found.append((f"org:{org}", caps))
        return found

    def steer(self, group: str, ordered: Sequence[Deployment], origins: Mapping[str, str],
              team: str | None = None, org: str | None = None) -> Steer | None:
        """A new order when a cap asks for one (or cannot be met), else None. Only the
        requested group's own equivalent deployments are moved to the front: fallback
        groups serve when it fails, not to spread its load."""
        scopes = self.scopes(group, team, org)
        if not scopes or not ordered:
            return None
        first = ordered[0]
        if origins.get(first.name, group) != group:
            return None
        now = self._clock()
        views = [(label, caps, *self._view(label, caps, now)) for label, caps in scopes]

        def over(vendor: str) -> tuple[str, float, float] | None:
            # Above the cap already: one more request would only add to it. So a vendor's
            # share exceeds a cap by at most one request of the window (on one replica).
            for label, caps, counts, total in views:
                limit = caps.limit(vendor)
                if limit is not None and total and counts.get(vendor, 0) / total > limit:
                    return label, counts.get(vendor, 0) / total, limit
            return None

        def own() -> list[Deployment]:
            return [d for d in ordered if d.equivalent and origins.get(d.name, group) == group]

        blocked = over(first.vendor)
        if blocked is not None:
            label, share, limit = blocked
            why = f"caps {label}: {first.vendor} {share:.0%} > {limit:.0%}"
            under = [d for d in own() if over(d.vendor) is None]
            if not under:
                _count(self.unmet, (label, first.vendor))
                return list(ordered), "caps/unmet", f"{why}, no vendor under its cap"
            return self._first(ordered, under, (label, first.vendor), f"{why}, to")
        label, caps, counts, total = views[0]
        need = caps.min_vendors if label.startswith("group:") else None
        if need is not None and total:
            answered = {v for v, n in counts.items() if n > 0}
            if len(answered) < need and first.vendor in answered:
                fresh = [d for d in own() if d.vendor not in answered and over(d.vendor) is None]
                why = f"caps {label}: min_vendors {need}, {len(answered)} answered"
                if not fresh:
                    _count(self.unmet, (label, first.vendor))
                    return list(ordered), "caps/unmet", f"{why}, no other vendor to send to"
                return self._first(ordered, fresh, (label, first.vendor), f"{why}, to")
        return None

    def _first(self, ordered: Sequence[Deployment], pool: list[Deployment],
               moved: tuple[str, str], why: str) -> Steer:
        cheapest = min(pool, key=_price)
        _count(self.steered, moved)
        return ([cheapest, *(d for d in ordered if d is not cheapest)], "caps/steered",
                f"{why} {cheapest.name}")

    def _view(self, label: str, caps: VendorCaps, now: float) -> tuple[dict[str, int], int]:
        """Answered requests per vendor in the scope's window, this replica's and the
        others'."""
        window = self._window(label, caps)
        window.slide(now)
        others = self._others.get(label)
        if others is None:
            return window.counts, window.total
        counts = dict(others[0])
        for vendor, n in window.counts.items():
            counts[vendor] = counts.get(vendor, 0) + n
        return counts, window.total + others[1]

    def _window(self, label: str, caps: VendorCaps) -> _Window:
        window = self._windows.get(label)
        if window is None:
            window = self._windows[label] = _Window(caps.window_s)
        window.window_s = caps.window_s  # a reload may change it
        return window

    def served(self, group: str, team: str | None, org: str | None, vendor: str) -> None:
        """A request of ``group`` was answered by ``vendor``: count it in every scope whose
        caps it is under."""
        now = self._clock()
        for label, caps in self.scopes(group, team, org):
            window = self._window(label, caps)
            window.slide(now)
            window.add(now, vendor)

    def local_counts(self) -> dict[str, int]:
        """This replica's answered requests per scope and vendor in each window, to publish
        to the others ('scope\\x1fvendor' → count)."""
        now = self._clock()
        out = {}
        for label, window in list(self._windows.items()):
            window.slide(now)
            if not window.total:
                del self._windows[label]  # a scope nobody called lately (or no longer capped)
                continue
            for vendor, n in window.counts.items():
                if n:
                    out[f"{label}{_SEP}{vendor}"] = n
        return out

    def adopt_others(self, counts: Mapping[str, int]) -> None:
        """The other replicas' published counts, summed (replaces the last ones)."""
        others: dict[str, tuple[dict[str, int], int]] = {}
        for name, n in counts.items():
            label, _, vendor = name.partition(_SEP)
            vendors, total = others.get(label, ({}, 0))
            vendors[vendor] = vendors.get(vendor, 0) + n
            others[label] = vendors, total + n
        self._others = others

    def shares(self) -> dict[tuple[str, ...], float]:
        """(scope, vendor) → its share of the scope's window now, every replica's counted as
        last synced: for /metrics and the admin API."""
        now = self._clock()
        out: dict[tuple[str, ...], float] = {}
        for label in set(self._windows) | set(self._others):
            window = self._windows.get(label)
            if window is not None:
                window.slide(now)
            counts = dict(self._others.get(label, ({}, 0))[0])
            if window is not None:
                for vendor, n in window.counts.items():
                    counts[vendor] = counts.get(vendor, 0) + n
            total = sum(counts.values())
            for vendor, n in counts.items():
                if total and n:
                    out[(label, vendor)] = n / total
        return out

    def status(self) -> dict[str, object]:
        """For ``/admin/status``: where the windows are kept, each capped scope's shares now,
        and the requests steered and unmet per scope and vendor."""
        where = {None: "process", True: "redis", False: "process (redis unreachable)"}
        by_scope: dict[str, dict[str, dict[str, float]]] = {}
        for kind, values in (("shares", self.shares()), ("steered", self.steered),
                             ("unmet", self.unmet)):
            for (label, vendor), value in values.items():
                by_scope.setdefault(label, {}).setdefault(kind, {})[vendor] = value
        return {"active": self.active, "window": where[self.shared], "scopes": by_scope}


def _count(tally: dict[tuple[str, str], int], key: tuple[str, str]) -> None:
    tally[key] = tally.get(key, 0) + 1


def _price(d: Deployment) -> float:
    """The least extra cost: dearer deployments are steered to last (unpriced ones last)."""
    if d.price is None:
        return float("inf")
    return d.price.input_per_1m + d.price.output_per_1m
