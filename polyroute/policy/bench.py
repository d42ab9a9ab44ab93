"""Micro-benchmark of the policy path a request takes: authenticate (cached key, HMAC),
admit (RPM, TPM, concurrency and a budget reservation on key, team and org) and settle
(cost, release, one ledger record appended to the spool). No upstream, no HTTP.

    python -m polyroute.policy.bench                      # in process
    python -m polyroute.policy.bench --redis redis://127.0.0.1:6379/15

Prints wall and CPU microseconds per request.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

from polyroute.config.compiled import (
    GatewayConfig,
    LimitsSettings,
    ServerSettings,
    StorageSettings,
)
from polyroute.model.price import Price
from polyroute.model.record import Attempt, RequestRecord
from polyroute.model.usage import Usage
from polyroute.policy.admin import AdminService
from polyroute.policy.directory import Directory
from polyroute.policy.entities import KeyIn, OrgIn, TeamIn
from polyroute.policy.keyed import KeyPolicy
from polyroute.policy.prices import Prices
from polyroute.policy.types import AdmissionRequest
from polyroute.pricing.catalog import PriceCatalog
from polyroute.state.limits import Limiter
from polyroute.state.memory_limits import MemoryLimiter
from polyroute.state.redis_limits import RedisLimiter
from polyroute.storage import sqlite
from polyroute.storage.key_store import KeyStore
from polyroute.storage.ledger import LedgerWriter
from polyroute.storage.spool import Spool


async def run(n: int, redis_url: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="polyroute-bench-") as tmp:
        db = await sqlite.open_database(f"{tmp}/bench.sqlite")
        store = KeyStore(db)
        limits = LimitsSettings()
        directory = Directory(store, limits)
        await directory.refresh()
        admin = AdminService(directory, store, db)
        await admin.put_org(OrgIn(id="org", monthly_budget_usd=1e6))
        await admin.put_team(TeamIn(id="team", org="org", rpm=10**9, tpm=10**12,
                                    daily_budget_usd=1e6))
        key = await admin.create_key(KeyIn(team="team", rpm=10**9, max_concurrent=1000,
                                           total_budget_usd=1e6))
        ledger = LedgerWriter(Spool(f"{tmp}/spool"), db)
        ledger.open()
        config = GatewayConfig("bench", ServerSettings(), StorageSettings("x"), {}, {})
        limiter: Limiter
        client = None
        if redis_url:
            import redis.asyncio as aioredis

            client = aioredis.from_url(redis_url)
            await client.flushdb()

            async def no_spend() -> dict[str, int]:
                return {}

            limiter = RedisLimiter(client, lease_ttl_s=30, timeout_s=1.0, load_spend=no_spend)
            await limiter.ensure_seeded()
        else:
            limiter = MemoryLimiter()
        policy = KeyPolicy(directory, limiter, ledger, Prices(config, PriceCatalog.load()),
                           limits)
        policy.spend_ready = True
        price = Price(2.5, 10.0, 1.25)
        admission = AdmissionRequest("chat", 120, 256, [price, Price(0.15, 0.6)])
        usage = Usage(prompt_tokens=110, completion_tokens=42, total_tokens=152)

        async def one(i: int) -> None:
            principal = await policy.authenticate(key.key)
            ticket = await policy.admit(principal, admission)
            record = RequestRecord(f"req{i}", time.time(), "chat", "chat", model_group="chat",
                                   vendor="openai", deployment="openai/gpt-4o",
                                   upstream_model="gpt-4o", latency_s=0.2, usage=usage,
                                   attempts=[Attempt("openai/gpt-4o", "openai", 0.2)],
                                   key_id=principal.key_id, team=principal.team,
                                   org=principal.org)
            policy.settle(ticket, record)

        for i in range(min(2000, n)):  # warm up
            await one(i)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for i in range(n):
            await one(i)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        await limiter.aclose()
        if client is not None:
            await client.aclose()
        ledger._spool.close()  # the bench does not flush: only the request path is measured
        await db.close()
    return {"wall_us": wall / n * 1e6, "cpu_us": cpu / n * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50_000)
    parser.add_argument("--redis", help="measure with the shared limiter on this Redis")
    args = parser.parse_args()
    result = asyncio.run(run(args.n if not args.redis else min(args.n, 10_000), args.redis))
    mode = "redis" if args.redis else "in process"
    print(f"policy path ({mode}): {result['wall_us']:.1f} µs wall, "
          f"{result['cpu_us']:.1f} µs CPU per request")


if __name__ == "__main__":
    main()
