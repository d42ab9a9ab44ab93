"""Limits and budgets in this process: exact for one replica, a few µs per request.

Also the fallback a fail-open team gets while Redis is down (then per replica, and without
budgets, which only the shared counters know)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from polyroute.state.limits import WINDOW_S, Denial, Grant, Periods, Scope


class _Window:
    """Amounts per one-second bucket over the last WINDOW_S + 1 seconds."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()
        self.total = 0

    def used(self, now_s: int) -> int:
        b, cutoff = self.buckets, now_s - WINDOW_S
        while b and b[0][0] < cutoff:
            self.total -= b.popleft()[1]
        return self.total

    def add(self, now_s: int, amount: int) -> None:
        b = self.buckets
        if b and b[-1][0] == now_s:
            b[-1][1] += amount
        else:
            b.append([now_s, amount])
        self.total += amount

    def adjust(self, second: int, delta: int) -> None:
        for bucket in reversed(self.buckets):
            if bucket[0] == second:
                bucket[1] += delta
                self.total += delta
                return
            if bucket[0] < second:
                return  # expired already: nothing left to correct

    def retry_after(self, excess: int, now: float) -> float:
        """Seconds until ``excess`` units have left the window."""
        freed = 0
        for second, amount in self.buckets:
            freed += amount
            if freed >= excess:
                return max(0.0, second + WINDOW_S + 1 - now)
        return float(WINDOW_S)


class _ScopeState:
    __slots__ = ("inflight", "requests", "reserved", "spent", "tokens")

    def __init__(self) -> None:
        self.requests = _Window()
        self.tokens = _Window()
        self.inflight = 0
        self.reserved = 0
        self.spent: dict[str, int] = {}
        """Period suffix ('d20260102', 'm202601', 't') → nano-USD."""


class MemoryLimiter:
    shared = False

    def __init__(self, *, budgets: bool = True) -> None:
        self._budgets = budgets
        self._scopes: dict[str, _ScopeState] = {}
        self._periods: tuple[int, Periods] = (-1, Periods("", ""))

    def periods(self, now_s: int) -> Periods:
        cached_s, periods = self._periods
        if cached_s != now_s:
            periods = Periods.at(now_s)
            self._periods = (now_s, periods)
        return periods

    async def acquire(self, lease: str, scopes: Sequence[Scope], tokens: int, cost: int,
                      now: float) -> Grant | Denial:
        return self.take(lease, scopes, tokens, cost, now)

    def take_locally(self, lease: str, scopes: Sequence[Scope], tokens: int, cost: int,
                     now: float) -> Grant | Denial:
        return self.take(lease, scopes, tokens, cost, now)

    def take(self, lease: str, scopes: Sequence[Scope], tokens: int, cost: int,
             now: float) -> Grant | Denial:
        now_s = int(now)
        periods = self.periods(now_s)
        states = self._scopes
        for scope in scopes:
            if not scope.limited:
                continue
            st = states.get(scope.name)
            if st is None:
                st = states[scope.name] = _ScopeState()
            if scope.rpm is not None and st.requests.used(now_s) + 1 > scope.rpm:
                return Denial("rpm", scope.name, st.requests.retry_after(1, now))
            if scope.tpm is not None:
                excess = st.tokens.used(now_s) + tokens - scope.tpm
                if excess > 0:
                    retry = None if tokens > scope.tpm else st.tokens.retry_after(excess, now)
                    return Denial("tpm", scope.name, retry)
            if scope.max_concurrent is not None and st.inflight >= scope.max_concurrent:
                return Denial("concurrency", scope.name, 1.0)
            if self._budgets and scope.budgets:
                spent = st.spent
                for period, limit in scope.budgets:
                    used = spent.get(periods.suffix(period), 0)
                    if used + st.reserved + cost > limit:
                        return Denial("budget", scope.name, None, period)
        for scope in scopes:
            if not scope.limited:
                continue
            st = states[scope.name]
            st.requests.add(now_s, 1)
            st.tokens.add(now_s, tokens)
            if scope.max_concurrent is not None:
                st.inflight += 1
            if scope.budgets:
                st.reserved += cost
        return Grant(lease, scopes, now_s, tokens, cost, periods)

    def release(self, grant: Grant, cost: int, tokens: int) -> None:
        if grant.released:
            return
        grant.released = True
        delta = tokens - grant.tokens
        states = self._scopes
        periods = grant.periods
        for scope in grant.scopes:
            st = states.get(scope.name)
            if grant.limited and scope.limited and st is not None:
                if scope.max_concurrent is not None:
                    st.inflight -= 1
                if scope.budgets:
                    st.reserved -= grant.cost
                if delta:
                    st.tokens.adjust(grant.second, delta)
            if cost and self._budgets:
                if st is None:
                    st = states[scope.name] = _ScopeState()
                spent = st.spent
                for suffix in (periods.day, periods.month, "t"):
                    spent[suffix] = spent.get(suffix, 0) + cost

    async def seed(self, spend: dict[str, int]) -> None:
        # Counters charged since the query ran are newer than the ledger: keep the larger.
        for name, value in spend.items():
            scope, _, suffix = name.rpartition(":")
            st = self._scopes.get(scope)
            if st is None:
                st = self._scopes[scope] = _ScopeState()
            if value > st.spent.get(suffix, 0):
                st.spent[suffix] = value

    def spent(self, name: str) -> int:
        """``'<scope>:<period suffix>'`` → nano-USD spent."""
        scope, _, suffix = name.rpartition(":")
        st = self._scopes.get(scope)
        return st.spent.get(suffix, 0) if st is not None else 0

    def reserved(self, scope: str) -> int:
        st = self._scopes.get(scope)
        return st.reserved if st is not None else 0

    def inflight(self, scope: str) -> int:
        st = self._scopes.get(scope)
        return st.inflight if st is not None else 0

    async def counters(self, scope: str, periods: Periods) -> tuple[int, int, int, int, int]:
        return (self.spent(f"{scope}:{periods.day}"), self.spent(f"{scope}:{periods.month}"),
                self.spent(f"{scope}:t"), self.reserved(scope), self.inflight(scope))

    def start(self) -> None:
        """Nothing to watch in process."""

    async def run(self) -> None:
        """No background work: the counters are this process's own."""

    def status(self) -> dict[str, Any]:
        return {"backend": "memory"}

    async def aclose(self) -> None:
        """Nothing to close."""
