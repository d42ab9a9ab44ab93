"""The composition root's back half: builds the real policy and everything behind it — the
database, the key directory, the limiter (in process, or Redis), the ledger and the admin API
— and runs their background work. ``build_app`` (app.py) builds one and calls ``start`` and
``aclose``; ``polyroute keys|teams|usage`` builds one to serve a call in process. Only here
and in app.py are concrete backends named.

Start-up never waits long on a database that is down: it tries for a few seconds, then keeps
trying in the background while the gateway serves what it can (open mode needs nothing; keys
need the directory loaded once; budgets need the spend so far).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from polyroute.config.compiled import GatewayConfig
from polyroute.independence.publish import measure_forever
from polyroute.independence.topology import Topology
from polyroute.observability.metrics import Metrics
from polyroute.policy.admin import AdminService
from polyroute.policy.audit import AuditLog, RefusalAuditor
from polyroute.policy.directory import Directory
from polyroute.policy.entities import Settings
from polyroute.policy.keyed import KeyPolicy
from polyroute.policy.prices import Prices
from polyroute.policy.roles import AdminKeys
from polyroute.pricing.catalog import PriceCatalog
from polyroute.state.limits import Limiter, Periods
from polyroute.state.memory_limits import MemoryLimiter
from polyroute.storage import postgres, sqlite
from polyroute.storage.admin_keys import AdminKeyStore
from polyroute.storage.audit import AuditStore
from polyroute.storage.database import Database, StoreUnavailable
from polyroute.storage.key_store import KeyStore
from polyroute.storage.ledger import LedgerWriter
from polyroute.storage.spool import Spool
from polyroute.storage.usage import spend_counters
from polyroute.surface.admin.routes import AdminRoutes

log = logging.getLogger("polyroute.policy")

_STARTUP_WAIT_S = 5.0
_RETRY_S = 1.0
BUDGET_REFRESH_S = 15.0


def open_database(config: GatewayConfig) -> Database:
    """The config's database (not yet started): PostgreSQL when a URL is set, else SQLite."""
    storage = config.storage
    if storage.postgres_url:
        return postgres.PostgresDatabase(storage.postgres_url, timeout_s=2.0, pool_size=4)
    return sqlite.SqliteDatabase(storage.sqlite_path)


class PolicyStack:
    def __init__(self, config: GatewayConfig) -> None:
        self._config = config
        storage = config.storage
        self.db = open_database(config)
        self.store = KeyStore(self.db)
        self.directory = Directory(self.store, config.limits)
        self.ledger: LedgerWriter | None = None
        spool_dir = storage.spool_dir or str(Path(storage.sqlite_path).parent / "spool")
        # Refusals are spooled like ledger records (the ledger's spool reads only its own
        # segment names, so a subdirectory is safe); one admin call served in process has
        # no ledger and needs no spool.
        self.audit = AuditLog(AuditStore(self.db), Spool(str(Path(spool_dir) / "audit"))
                              if storage.ledger else None)
        self.refusals = RefusalAuditor(self.audit)
        if storage.ledger:
            self.ledger = LedgerWriter(Spool(spool_dir), self.db,
                                       interval_s=storage.flush_interval_s,
                                       batch=max(storage.flush_batch, 100))
        self.limiter: Limiter
        if config.state.redis_url is not None:
            # imported here: redis-py is ~8 MB of private memory a Redis-less gateway never uses
            from polyroute.state.redis_limits import RedisLimiter, limits_client

            client = limits_client(config.state.redis_url, config.state.timeout_s)
            self.limiter = RedisLimiter(
                client, lease_ttl_s=config.limits.lease_ttl_s, timeout_s=config.state.timeout_s,
                load_spend=self._load_spend, url=config.state.redis_url)
        else:
            self.limiter = MemoryLimiter()
        # The catalog the config was priced from: prices.json is read once per gateway.
        self.prices = Prices(config, config.catalog or PriceCatalog.load())
        self.policy = KeyPolicy(self.directory, self.limiter, self.ledger, self.prices,
                                config.limits, config.auth.master_key)
        self.topology = Topology.of(config)
        self.service = service = AdminService(self.directory, self.store, self.db,
                                              counters=self.limiter.counters,
                                              topology=self.topology)
        service.guardrails = frozenset(g.name for g in config.guardrails)
        self.admin = AdminRoutes(service, config.auth.master_key, self.status,
                                 AdminKeys(AdminKeyStore(self.db)), self.audit)
        self._tasks: list[asyncio.Task[None]] = []
        self._db_started = False
        self.budget_use: dict[tuple[str, str], float] = {}
        """(scope, period) → share of the budget spent, for /metrics (refreshed every
        ``BUDGET_REFRESH_S`` by a background task, never on a scrape)."""
        self.metrics: Metrics | None = None
        """Set by the composition root: the dependence gauges are measured into it."""
        self.vendor_caps: Callable[[], dict[str, Any]] | None = None
        """Set by the composition root: the vendor-share caps' state, for /admin/status."""

    async def start(self) -> None:
        if self.ledger is not None:
            self.ledger.open()
        self.audit.open()
        self.audit.start()
        self.limiter.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_STARTUP_WAIT_S):
                await self._bring_up_once()
        if not self._ready:
            log.warning("the database is unreachable: serving %s; retrying in the background",
                        "nothing keyed until it answers" if self._config.auth.master_key
                        else "what the cache allows")
            self._tasks.append(asyncio.create_task(self._bring_up()))
        else:
            self._started()

    @property
    def _ready(self) -> bool:
        return self._db_started and self.directory.loaded and self.policy.spend_ready

    async def _bring_up_once(self) -> None:
        try:
            if not self._db_started:
                await self.db.start()
                self._db_started = True
            if self.ledger is not None:
                await self.ledger.start()
            if not self.directory.loaded:
                await self.directory.refresh()
            if not self.policy.spend_ready:
                await self._seed()
        except StoreUnavailable as exc:
            log.debug("bring-up: %s", exc)

    async def _bring_up(self) -> None:
        while not self._ready:
            await asyncio.sleep(_RETRY_S)
            await self._bring_up_once()
        log.warning("the database answers: keys, budgets and the ledger are fully up")
        self._started()

    def _started(self) -> None:
        self._tasks.append(asyncio.create_task(
            self.directory.refresh_forever(self._config.auth.refresh_s)))
        self._tasks.append(asyncio.create_task(self.limiter.run()))
        self._tasks.append(asyncio.create_task(self._watch_budgets()))
        settings = self._config.metrics
        if self.metrics is not None and settings.independence_interval_s > 0:
            self._tasks.append(asyncio.create_task(measure_forever(
                self.db, self.topology, self.metrics, settings.independence_interval_s,
                settings.independence_window_s)))
        self._announce()

    async def _watch_budgets(self) -> None:
        while True:
            try:
                self.budget_use = await self._budget_use()
            except Exception as exc:  # the store is down: keep the last figures
                log.debug("budget gauges: %s", exc)
            await asyncio.sleep(BUDGET_REFRESH_S)

    async def _budget_use(self) -> dict[tuple[str, str], float]:
        d = self.directory
        scoped: list[tuple[str, Settings]] = [
            *((f"k:{k.id}", k) for k in d.keys() if not k.revoked),  # noqa: SIM118 (a method)
            *((f"t:{t.id}", t) for t in d.teams()), *((f"o:{o.id}", o) for o in d.orgs())]
        use: dict[tuple[str, str], float] = {}
        for scope, settings in scoped:
            budgets = (("day", settings.daily_budget_usd),
                       ("month", settings.monthly_budget_usd),
                       ("total", settings.total_budget_usd))
            if all(b is None for _, b in budgets):
                continue
            status = await self.service.budget(scope)
            spent = {"day": status.spent_today_usd, "month": status.spent_this_month_usd,
                     "total": status.spent_total_usd}
            for period, budget in budgets:
                if budget is not None:
                    use[(scope, period)] = spent[period] / budget if budget else 1.0
        return use

    async def _seed(self) -> None:
        """In process: the spend so far, from the ledger (after the spool of a process that
        died was flushed into it), before any budgeted request is admitted."""
        if not self.limiter.shared:
            if self.ledger is not None:
                await self.ledger.flush()
            await self.limiter.seed(await self._load_spend())
        self.policy.spend_ready = True

    async def _load_spend(self) -> dict[str, int]:
        now = time.time()
        periods = Periods.at(now)
        return await spend_counters(self.db, now, periods.day, periods.month)

    def _announce(self) -> None:
        if self.policy.open_mode:
            log.warning("no client keys and no master key: OPEN MODE — anyone who can reach "
                        "%s:%d may call the gateway. Fine on loopback; create a key "
                        "('polyroute keys create') or set auth.master_key to require keys.",
                        self._config.server.host, self._config.server.port)
        else:
            log.info("virtual keys required (%d active); limits %s", self.directory.active_keys,
                     "shared through Redis" if self.limiter.shared
                     else "in process")

    async def status(self) -> dict[str, Any]:
        ledger = self.ledger
        backlog = None
        if ledger is not None:
            with contextlib.suppress(Exception):
                backlog = ledger.backlog_bytes()
        return {
            "mode": "open" if self.policy.open_mode else "keys",
            "active_keys": self.directory.active_keys,
            "directory_loaded": self.directory.loaded,
            "quarantined": dict(self.directory.quarantined),
            "spend_loaded": self.policy.spend_ready,
            "database": self.db.dialect,
            "ledger": None if ledger is None else {
                "written": ledger.written, "failing": ledger.failing,
                "quarantined": ledger.quarantined,
                "backlog_bytes": backlog},
            "state": self.limiter.status(),
            "audit": {"pending": self.audit.pending, "failing": self.audit.failing},
            "vendor_caps": self.vendor_caps() if self.vendor_caps is not None else None,
        }

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.limiter.aclose()
        await self.audit.aclose()
        if self.ledger is not None:
            await self.ledger.aclose()
        await self.db.close()
