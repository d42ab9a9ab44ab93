"""Rate limits, concurrency and budget reservations: the types both backends share.

A *scope* is one key, team or organisation (``k:<id>``, ``t:<id>``, ``o:<id>``) with its
limits. Admission checks every limited scope of a request and, only if all pass, takes from
all of them at once: one RPM slot, the estimated tokens, a concurrency slot and the
worst-case cost, reserved under a *lease*. Settling gives the lease back and charges the real
cost and tokens. Windows are 61 one-second buckets, so a limit holds in every 60-second window
(a request admitted at 12:00:00.9 counts until 12:01:01.0: conservative by under a second).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

WINDOW_S = 60


@dataclass(frozen=True, slots=True)
class Scope:
    name: str
    """'k:<key id>', 't:<team>', 'o:<org>'."""
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    budgets: tuple[tuple[str, int], ...] = ()
    """(period, limit in nano-USD) with period 'd' (UTC day), 'm' (UTC month), 't' (total)."""
    limited: bool = field(init=False, default=False)
    """Has any limit: admission must look at it (precomputed: it is read per request)."""
    leased: bool = field(init=False, default=False)
    """Holds something until the request ends (a concurrency slot or a reservation)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "limited", bool(
            self.rpm or self.tpm or self.max_concurrent or self.budgets))
        object.__setattr__(self, "leased", bool(self.max_concurrent or self.budgets))


@dataclass(frozen=True, slots=True)
class Periods:
    """Counter suffixes of the periods a moment falls in."""

    day: str
    month: str

    @classmethod
    def at(cls, unix: float) -> Periods:
        t = time.gmtime(unix)
        return cls(f"d{t.tm_year:04d}{t.tm_mon:02d}{t.tm_mday:02d}",
                   f"m{t.tm_year:04d}{t.tm_mon:02d}")

    def suffix(self, period: str) -> str:
        return self.day if period == "d" else self.month if period == "m" else "t"


@dataclass(slots=True)
class Grant:
    """What one admitted request holds; given back by ``release``."""

    lease: str
    scopes: Sequence[Scope]
    """Every scope of the caller (spend is charged to all, limited or not)."""
    second: int
    """The bucket the RPM slot and tokens went into."""
    tokens: int
    cost: int
    """Reserved, nano-USD."""
    periods: Periods
    shared: bool = False
    """Taken in Redis (else in this process)."""
    limited: bool = True
    """False: nothing was taken, only spend is charged at the end."""
    released: bool = field(default=False)


@dataclass(frozen=True, slots=True)
class Denial:
    kind: str
    """'rpm', 'tpm', 'concurrency' or 'budget'."""
    scope: str
    retry_after: float | None = None
    period: str | None = None


class StateUnavailable(Exception):
    """The shared state (Redis) did not answer in time; the caller applies the team's
    fail-open or fail-closed choice."""


SpendLoader = Callable[[], Awaitable[dict[str, int]]]
"""async () → the spend so far from the ledger, ``'<scope>:<period suffix>'`` → nano-USD."""


class Limiter(Protocol):
    """What the policy and the gateway's wiring ask of a limits backend, in process
    (:mod:`.memory_limits`) or shared by replicas (:mod:`.redis_limits`). Nobody outside
    ``state/`` asks which one it holds: the differences are these methods' answers."""

    @property
    def shared(self) -> bool:
        """The counters live in a store every replica shares. Such a store loads the spend
        from the ledger itself whenever it lacks it (:meth:`run`); counters in process are
        seeded once at start-up, before any budgeted request is admitted."""
        ...

    def periods(self, now_s: int) -> Periods:
        """The periods ``now_s`` falls in (cached per second: asked per request)."""
        ...

    async def acquire(self, lease: str, scopes: Sequence[Scope], tokens: int, cost: int,
                      now: float) -> Grant | Denial:
        """Raises :class:`StateUnavailable` when a shared store does not answer in time."""
        ...

    def take_locally(self, lease: str, scopes: Sequence[Scope], tokens: int, cost: int,
                     now: float) -> Grant | Denial:
        """Rate limits counted in this process alone, without budgets: what a fail-open team
        gets while the shared store is down (in process, the same as ``acquire``)."""
        ...

    def release(self, grant: Grant, cost: int, tokens: int) -> None:
        """Never blocks: a shared backend queues the update and applies it in the background."""
        ...

    async def seed(self, spend: dict[str, int]) -> None:
        """Set the spend counters (``'<scope>:<period suffix>'`` → nano-USD) from the ledger."""
        ...

    async def counters(self, scope: str, periods: Periods) -> tuple[int, int, int, int, int]:
        """(spent today, this month, in total, reserved, in flight) of one scope, nano-USD:
        for the admin API."""
        ...

    def start(self) -> None:
        """Begin watching the store (called on the event loop, before the database is up)."""
        ...

    async def run(self) -> None:
        """Background work for as long as the gateway runs, once the database answers (a
        shared store renews this replica's leases and loads the spend if no replica has)."""
        ...

    def status(self) -> dict[str, Any]:
        """What ``/admin/status`` shows under ``state``."""
        ...

    async def aclose(self) -> None: ...
