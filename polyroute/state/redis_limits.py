"""Limits and budgets shared by every replica through Redis: exact across replicas.

Admission is one EVALSHA (:data:`~.redis_scripts.ADMIT`) for key, team and org at once,
bounded by ``timeout_s``; settling is queued and sent in batches, in the write of the next
admission or within 5 ms, so the request path never waits for it. Both go over one pipelined
connection (:mod:`.resp`: hiredis packs and parses, concurrent requests share the round
trips); redis-py serves the rare calls.
Each replica renews its in-flight leases every ``lease_ttl_s / 3``; the leases of a replica
that died expire after ``lease_ttl_s``, freeing their concurrency slots and reservations.

Whether Redis is up is decided by a watchdog *thread* that pings it every 20 ms with a 75 ms
socket timeout — not by the admission call's own timer, which a busy event loop fires late
(under load that would call a healthy Redis "down" and wrongly fail teams open). When the
watchdog sees Redis fail it expires every admission in flight at once, and later admissions
fail immediately, so a team's fail-open/closed decision takes about 100 ms at most. A reply
on the hot calls' pipe within the last 5 ms stands for a ping (under load that skips nearly
every ping: a redis-py round trip 50 times a second, on another thread). The admission
call itself gets a generous ``call_timeout_s``. Settlements wait in the queue and are applied
once Redis is back.

A script *error* is not an outage: Redis answered, it refused one call. Numbers that a Lua
double cannot hold exactly are refused before they are sent (admission) or clamped (settling);
a script error that still happens is logged as the bug it is and fails that request only
(:class:`LimitsScriptError`), or that one settlement (the settle script runs each under
``pcall``; none is retried) — it never marks Redis down, so one hostile request cannot make a
replica fall back to per-replica limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Sequence
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import (
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)

from polyroute.errors import GatewayError, InvalidRequest
from polyroute.state.limits import (
    Denial,
    Grant,
    Periods,
    Scope,
    SpendLoader,
    StateUnavailable,
)
from polyroute.state.memory_limits import MemoryLimiter
from polyroute.state.redis_scripts import ADMIT, RENEW, SEED, SETTLE
from polyroute.state.resp import ScriptPipe

log = logging.getLogger("polyroute.state.limits")

_FAILURES = (RedisError, OSError, TimeoutError)
LUA_MAX_INT = 2**53
"""Lua numbers are doubles: integers beyond this are not exact (and ``%d`` of a huge one
makes Redis's INCRBY overflow), so none is ever sent."""
# Refusals that mean "Redis cannot serve now" (a replica promoted, memory full, loading), not
# "this call was wrong": those are outages like a dropped connection.
_OUTAGE_REPLIES = ("BUSY", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "NOREPLICAS")
_BATCH = 256
_SETTLE_WITHIN_S = 0.005
"""Queued settlements leave with the next admission, or after this long without one."""
_MAX_QUEUED = 200_000  # settlements kept while Redis is down; older ones are dropped (logged)
_WATCH_EVERY_S = 0.02
_WATCH_TIMEOUT_S = 0.075  # + the interval: a hang is noticed within 100 ms
_ANSWERED_RECENTLY_S = 0.005
"""A reply on the pipe this recent stands for the watchdog's ping (under load replies come
every few milliseconds, and the ping was most of Redis mode's extra work per request); a
hang is then still noticed within 5 + 20 + 75 ms."""
_POOL = 16  # Redis runs scripts one at a time: more connections only add connects


def limits_client(url: str, timeout_s: float) -> aioredis.Redis:
    """A client with a bounded pool: under a burst, admissions queue for a connection
    instead of opening hundreds."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=_POOL, timeout=None, socket_timeout=max(timeout_s, 1.0),
        socket_connect_timeout=max(timeout_s, 0.5))
    return aioredis.Redis(connection_pool=pool)
_SEED_LOCK_MS = 30_000


class LimitsScriptError(GatewayError):
    """Redis refused a limits script for this request (a bug, or input no check caught).
    Only this request fails; the shared limits stay up for every other one."""

    status = 500
    code = "limits_script_error"


def is_script_error(exc: BaseException) -> bool:
    """Redis answered but refused the call itself: not evidence that Redis is down."""
    if not isinstance(exc, ResponseError) or isinstance(exc, (ReadOnlyError, OutOfMemoryError)):
        return False
    return not str(exc).startswith(_OUTAGE_REPLIES)


def _clamped(value: int, what: str) -> int:
    if -LUA_MAX_INT < value < LUA_MAX_INT:
        return value
    log.error("redis limits: clamped an absurd %s (%d) to ±2**53: a bug upstream of settling",
              what, value)
    return LUA_MAX_INT - 1 if value > 0 else 1 - LUA_MAX_INT

class RedisLimiter:
    shared = True

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        lease_ttl_s: float,
        timeout_s: float,
        load_spend: SpendLoader,
        prefix: str = "polyroute:{lim}:",
        url: str | None = None,
        call_timeout_s: float = 1.0,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_ms = int(lease_ttl_s * 1000)
        self._timeout = timeout_s
        self._call_timeout = call_timeout_s if url else timeout_s
        self._url = url
        self._load_spend = load_spend
        self._admit = client.register_script(ADMIT)
        self._settle = client.register_script(SETTLE)
        self._renew = client.register_script(RENEW)
        self._seed = client.register_script(SEED)
        self._pipe = ScriptPipe.of(client)
        """The hot calls' connection; None: the client's connection is one it cannot open."""
        self.local = MemoryLimiter(budgets=False)
        """Per-replica limits for fail-open teams while Redis is down."""
        self._live: dict[str, Grant] = {}
        self._queue: deque[list[Any]] = deque()
        self._healthy = True
        self.rejected_settlements = 0
        """Settlements Redis refused (script errors): each is a bug report in the log."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._drain: asyncio.Task[None] | None = None
        self._send_at: asyncio.TimerHandle | None = None
        """The :meth:`_send` scheduled for queued settlements (None: none is)."""
        self._prober: asyncio.Task[None] | None = None
        self._seeding: asyncio.Task[None] | None = None
        self._recovering: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Timeout] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    def start(self) -> None:
        """Start the watchdog thread (with a URL; without, the call timeout decides)."""
        if self._url is None or self._watchdog is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._watchdog = threading.Thread(target=self._watch, name="polyroute-redis-watchdog",
                                          daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        assert self._url is not None and self._loop is not None
        client = redis.Redis.from_url(self._url, socket_timeout=_WATCH_TIMEOUT_S,
                                      socket_connect_timeout=_WATCH_TIMEOUT_S)
        loop = self._loop
        pipe = self._pipe
        while not self._stop.wait(_WATCH_EVERY_S):
            if self._healthy and pipe is not None \
                    and time.monotonic() - pipe.answered_at < _ANSWERED_RECENTLY_S:
                continue  # the pipe's replies show Redis answering: a ping would say no more
            try:
                client.ping()
                up = True
            except (RedisError, OSError):
                up = False
            if up != self._healthy:
                with contextlib.suppress(RuntimeError):  # the loop closed: we are done
                    loop.call_soon_threadsafe(self._came_up if up else self._went_down_now)
        client.close()

    def _went_down_now(self) -> None:
        self._went_down(ConnectionError("no answer to the watchdog's ping"))

    def _came_up(self) -> None:
        if self._healthy or (self._recovering is not None and not self._recovering.done()):
            return
        self._recovering = self._spawn(self._recover())

    async def _recover(self) -> None:
        # Connections opened before the outage are dead (a restarted server): drop them all,
        # or each would fail one admission and flap the state.
        with contextlib.suppress(*_FAILURES):
            await self._redis.connection_pool.disconnect()
        if self._pipe is not None:
            self._pipe.reset()
        log.warning("redis is back: shared limits resume")
        self._healthy = True
        self._start_seed()
        if self._queue:
            self._drain = self._spawn(self._flush())

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def acquire(self, lease: str, scopes: Sequence[Scope], tokens: int, cost: int,
                      now: float) -> Grant | Denial:
        if not self._healthy:
            raise StateUnavailable("redis is down")
        if not (0 <= tokens < LUA_MAX_INT and 0 <= cost < LUA_MAX_INT):
            raise InvalidRequest(
                f"This request's token estimate ({tokens}) or worst-case cost ({cost} nano-USD) "
                "is out of range; check max_tokens.", param="max_tokens")
        args: list[Any] = [self._prefix, lease, self._ttl_ms, tokens, cost]
        periods = self.local.periods(int(now))
        args += [periods.day, periods.month, 0]
        n = 0
        for s in scopes:
            if not s.limited:
                continue
            n += 1
            args += [s.name, s.rpm or 0, s.tpm or 0, s.max_concurrent or 0, len(s.budgets)]
            for period, limit in s.budgets:
                args += [period, limit]
        args[7] = n
        if self._send_at is not None:
            # Settlements first, in the same write: fewer sends to Redis (each costs this
            # process a loopback TCP send), and a slot a client's previous request freed is
            # free before its next one asks.
            self._send()
        result = await self._call(args)
        status = int(result[0])
        if status == -1:  # Redis lost the spend counters (restarted): load them, then retry
            self._start_seed()
            assert self._seeding is not None
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await asyncio.shield(self._seeding)
            result = await self._call(args)
            status = int(result[0])
            if status == -1:
                raise StateUnavailable("the shared spend counters are being loaded")
        if status == 0:
            kind, scope, retry_ms, period = (_s(result[1]), _s(result[2]), int(result[3]),
                                             _s(result[4]))
            return Denial(kind, scope, retry_ms / 1000 if retry_ms >= 0 else None,
                          period or None)
        grant = Grant(lease, scopes, int(result[1]), tokens, cost, periods, shared=True)
        self._live[lease] = grant
        return grant

    async def _call(self, args: list[Any]) -> Any:
        try:
            async with asyncio.timeout(self._call_timeout) as deadline:
                self._inflight.add(deadline)
                try:
                    return await self._script(self._admit, args)
                finally:
                    self._inflight.discard(deadline)
        except ResponseError as exc:
            if not is_script_error(exc):
                self._went_down(exc)
                raise StateUnavailable(f"redis: {exc.__class__.__name__}") from None
            log.error("BUG: redis refused the admission script (%s) for lease %s; this request "
                      "fails, the shared limits stay up", exc, args[1])
            raise LimitsScriptError(
                "The shared limits store refused this request (reported as a bug); it was "
                "not served.") from None
        except _FAILURES as exc:
            self._went_down(exc)
            raise StateUnavailable(f"redis: {exc.__class__.__name__}") from None

    async def _script(self, script: AsyncScript, args: list[Any]) -> Any:
        if self._pipe is not None:
            return await self._pipe.evalsha(script.sha, script.script, args)
        return await script(args=args)

    def release(self, grant: Grant, cost: int, tokens: int) -> None:
        if grant.released:
            return
        if not grant.shared and grant.limited:
            self.local.release(grant, 0, tokens)  # the local fallback's slots
        grant.released = True
        self._live.pop(grant.lease, None)
        held = grant.shared and grant.limited
        if not held and cost <= 0:
            return  # nothing was taken in Redis and nothing to charge
        op: list[Any] = [grant.lease, grant.second, _clamped(tokens - grant.tokens, "token delta"),
                         _clamped(cost, "cost"),
                         grant.periods.day, grant.periods.month, len(grant.scopes)]
        for s in grant.scopes:
            op += [s.name, 1 if held and s.tpm else 0, 1 if held and s.leased else 0]
        if len(self._queue) >= _MAX_QUEUED:
            self._queue.popleft()
            log.error("redis settlement queue full: dropped the oldest settlement")
        self._queue.append(op)
        if self._send_at is None and self._healthy \
                and (self._drain is None or self._drain.done()):
            self._send_at = asyncio.get_running_loop().call_later(_SETTLE_WITHIN_S, self._send)

    def _send(self) -> None:
        """Send the queued settlements onto the open pipe with no task (one settlement per
        request made a task per drain), ahead of an admission or when :data:`_SETTLE_WITHIN_S`
        passed; without a pipe or connection, :meth:`_flush` sends them."""
        if self._send_at is not None:  # called early, by an admission: the timer is moot
            self._send_at.cancel()
            self._send_at = None
        if not self._queue or not self._healthy or not (self._drain is None or self._drain.done()):
            return
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))]
            args: list[Any] = [self._prefix, len(batch)]
            for op in batch:
                args += op
            sent = self._pipe.submit("EVALSHA", self._settle.sha, 0, *args) \
                if self._pipe is not None else None
            if sent is None:
                self._queue.extendleft(reversed(batch))
                self._drain = self._spawn(self._flush())
                return
            sent.add_done_callback(functools.partial(self._settled, batch=batch))

    def _settled(self, reply: asyncio.Future[Any], batch: list[list[Any]]) -> None:
        """A batch :meth:`_send` sent was answered. Anything but an answer or a script
        error goes back to the queue, for :meth:`_flush` to send and judge (a lost
        connection, a Redis that forgot the script)."""
        result = reply.exception() or reply.result()
        if isinstance(result, ResponseError) and is_script_error(result) \
                and not isinstance(result, NoScriptError):
            self._rejected(len(batch), result)  # as _flush: never sent twice
            return
        if isinstance(result, BaseException):
            self._queue.extendleft(reversed(batch))
            if self._healthy and (self._drain is None or self._drain.done()):
                self._drain = self._spawn(self._flush())
            return
        if int(result[1]):
            self._rejected(int(result[1]), _s(result[2]))

    async def _flush(self) -> None:
        while self._queue and self._healthy:
            batch = [self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))]
            args: list[Any] = [self._prefix, len(batch)]
            for op in batch:
                args += op
            try:
                async with asyncio.timeout(max(self._timeout, 1.0)):
                    result = await self._script(self._settle, args)
            except _FAILURES as exc:
                if is_script_error(exc):
                    # Redis does not undo a failed script's earlier writes, so sending the
                    # batch again could charge twice: it is dropped, loudly (the ledger still
                    # has every record).
                    self._rejected(len(batch), exc)
                    continue
                self._queue.extendleft(reversed(batch))
                self._went_down(exc)
                return
            if int(result[1]):  # ops the script refused one by one; the rest were applied
                self._rejected(int(result[1]), _s(result[2]))

    def _rejected(self, count: int, error: object) -> None:
        self.rejected_settlements += count
        log.error("BUG: redis refused %d settlement(s) (%s): not retried; the shared limits "
                  "stay up and the ledger keeps the records", count, error)

    async def seed(self, spend: dict[str, int]) -> None:
        args: list[Any] = [self._prefix]
        for name, value in spend.items():
            args += [name, value]
        async with asyncio.timeout(5.0):
            await self._seed(args=args)

    async def ensure_seeded(self) -> None:
        """Load the spend counters from the ledger unless another replica has: at startup,
        and whenever Redis lost them (a restart without persistence)."""
        marker = f"{self._prefix}seeded"
        if await self._redis.exists(marker):
            return
        lock = f"{self._prefix}seeding"
        if not await self._redis.set(lock, b"1", nx=True, px=_SEED_LOCK_MS):
            for _ in range(100):  # another replica is seeding: wait for it
                await asyncio.sleep(0.05)
                if await self._redis.exists(marker):
                    return
            return
        try:
            await self.seed(await self._load_spend())
            log.info("shared spend counters loaded from the ledger")
        finally:
            await self._redis.delete(lock)

    def _start_seed(self) -> None:
        if self._seeding is None or self._seeding.done():
            self._seeding = self._spawn(self._seed_quietly())

    async def _seed_quietly(self) -> None:
        try:
            await self.ensure_seeded()
        except Exception as exc:  # the store or Redis is down: the next admission retries
            log.warning("could not load the shared spend counters: %s", exc)

    def _went_down(self, exc: BaseException) -> None:
        if self._healthy:
            log.warning("redis unavailable for limits (%s): teams fail open or closed as "
                        "configured until it answers again", exc.__class__.__name__)
        self._healthy = False
        now = asyncio.get_running_loop().time()
        for deadline in list(self._inflight):  # decide for the requests waiting on it, now
            with contextlib.suppress(RuntimeError):  # already expiring
                deadline.reschedule(now)
        if self._watchdog is None and (self._prober is None or self._prober.done()):
            self._prober = self._spawn(self._probe())

    async def _probe(self) -> None:
        """Without a watchdog thread (tests, embedded use): ping from the event loop."""
        while True:
            await asyncio.sleep(0.2)
            try:
                async with asyncio.timeout(self._timeout):
                    await self._redis.ping()
            except _FAILURES:
                continue
            self._came_up()
            return

    async def renew_forever(self) -> None:
        """Keep this replica's in-flight leases alive (every third of their TTL)."""
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            pairs: list[Any] = []
            for lease, grant in list(self._live.items()):
                pairs += [x for s in grant.scopes if s.leased for x in (s.name, lease)]
            if not pairs or not self._healthy:
                continue
            with contextlib.suppress(*_FAILURES):
                async with asyncio.timeout(1.0):
                    await self._renew(args=[self._prefix, self._ttl_ms, *pairs])

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        self._stop.set()
        if self._send_at is not None:
            self._send_at.cancel()
            self._send_at = None
        if self._watchdog is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._watchdog.join, 1.0)
        if self._healthy and self._queue:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._flush(), 2.0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pipe is not None:
            await self._pipe.aclose()

    def spent_key(self, counter: str) -> str:
        return f"{self._prefix}s:{counter}"

    async def read(self, scope: str, periods: Periods) -> tuple[int, int, int, int, int]:
        """(spent today, this month, in total, reserved, in flight) for the admin API."""
        keys = [self.spent_key(f"{scope}:{p}") for p in (periods.day, periods.month, "t")]
        async with asyncio.timeout(1.0):
            values = await self._redis.mget(keys)
            reserved = await self._redis.hget(f"{self._prefix}a:{scope}", "s")
            inflight = await self._redis.zcount(f"{self._prefix}l:{scope}",
                                                int(time.time() * 1000), "+inf")
        day, month, total = (int(v or 0) for v in values)
        return day, month, total, int(reserved or 0), int(inflight)


    # -- the rest of the Limiter protocol (state.limits), over the methods above ------------
    def periods(self, now_s: int) -> Periods:
        return self.local.periods(now_s)

    def take_locally(self, lease: str, scopes: Sequence[Scope], tokens: int, cost: int,
                     now: float) -> Grant | Denial:
        return self.local.take(lease, scopes, tokens, cost, now)

    async def counters(self, scope: str, periods: Periods) -> tuple[int, int, int, int, int]:
        return await self.read(scope, periods)

    async def run(self) -> None:
        await asyncio.gather(self._seed_at_start(), self.renew_forever())

    async def _seed_at_start(self) -> None:
        try:
            await self.ensure_seeded()
        except Exception as exc:  # Redis or the store down: the first budgeted request retries
            log.warning("could not load the shared spend counters yet: %s", exc)

    def status(self) -> dict[str, Any]:
        return {"backend": "redis", "healthy": self.healthy, "queued_settlements": self.queued,
                "rejected_settlements": self.rejected_settlements}


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
