"""Unit tests of the policy's parts: key format and hashing, pricing, the in-process limiter,
the spool, the ledger writer on SQLite, and admission/settlement end to end in one process."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from polyroute.config.compiled import LimitsSettings
from polyroute.errors import (
    AuthenticationFailed,
    BudgetExceeded,
    PermissionDenied,
    RateLimited,
)
from polyroute.model.price import Price
from polyroute.model.record import RequestRecord
from polyroute.model.usage import PromptTokensDetails, Usage
from polyroute.policy import keys
from polyroute.policy.directory import Directory
from polyroute.policy.entities import KeyIn, OrgIn, TeamIn
from polyroute.policy.keyed import KeyPolicy
from polyroute.policy.types import ANONYMOUS, AdmissionRequest
from polyroute.pricing.catalog import PriceCatalog
from polyroute.pricing.cost import cost_usd, to_nanos, worst_case_nanos
from polyroute.state.limits import Denial, Grant, Scope
from polyroute.state.memory_limits import MemoryLimiter
from polyroute.storage import sqlite
from polyroute.storage.key_store import KeyStore
from polyroute.storage.ledger import LedgerEntry, LedgerWriter
from polyroute.storage.spool import Spool
from polyroute.storage.sql import INSERT_LEDGER
from polyroute.storage.usage import usage


def test_key_format_and_hash() -> None:
    made = keys.new_key()
    assert made.token.startswith("sk-pr-") and made.key_id in made.token
    parsed = keys.parse(made.token)
    assert parsed is not None and parsed[0] == made.key_id
    assert keys.digest(bytes.fromhex(made.salt), parsed[1]).hex() == made.hash
    assert made.token.split("-", 3)[-1] not in (made.salt + made.hash)
    assert keys.parse("sk-pr-short") is None
    assert keys.parse(made.token + "x") is None
    assert keys.new_key().salt != made.salt


def test_catalog_and_costs() -> None:
    catalog = PriceCatalog.load()
    assert catalog.version and len(catalog) >= 30
    gpt4o = catalog.price("azure", "gpt-4o-2024-08-06")
    assert gpt4o is not None and gpt4o.input_per_1m == 2.5 and gpt4o.source.startswith("catalog")
    assert catalog.price("openrouter", "anthropic/claude-sonnet-4-5") is not None
    assert catalog.price("my-vllm", "llama-3.3-70b-versatile") is None  # open weights
    assert catalog.price("x", "no-such-model") is None
    price = Price(3.0, 15.0, cached_input_per_1m=0.3, cache_write_per_1m=3.75)
    usage = Usage(prompt_tokens=1000, completion_tokens=100, prompt_tokens_details=(
        PromptTokensDetails(cached_tokens=400, cache_creation_tokens=100)))
    # 500 plain × 3 + 400 cached × 0.3 + 100 written × 3.75 + 100 out × 15, per 1M tokens
    assert cost_usd(price, usage) == pytest.approx((1500 + 120 + 375 + 1500) / 1e6)
    assert worst_case_nanos(price, 1000, 100) == to_nanos((1000 * 3.75 + 100 * 15) / 1e6)


def test_window_limits_and_reservations() -> None:
    limiter = MemoryLimiter()
    scope = Scope("k:a", rpm=3, tpm=1000, max_concurrent=2, budgets=(("t", 100),))
    grants = []
    for i in range(2):
        g = limiter.take(f"l{i}", [scope], 100, 40, 1000.0 + i * 0.1)
        assert isinstance(g, Grant)
        grants.append(g)
    assert isinstance(limiter.take("l2", [scope], 100, 10, 1000.3), Denial)  # 2 in flight
    limiter.release(grants[0], cost=30, tokens=50)  # spent 30, reserved 40 left
    d = limiter.take("l3", [scope], 100, 40, 1000.4)
    assert isinstance(d, Denial) and d.kind == "budget"  # 30 + 40 + 40 > 100
    g = limiter.take("l4", [scope], 100, 30, 1000.5)
    assert isinstance(g, Grant)
    limiter.release(g, 0, 0)
    d = limiter.take("l5", [scope], 10, 0, 1001.0)
    assert isinstance(d, Denial) and d.kind == "rpm" and d.retry_after is not None
    assert 59 < d.retry_after <= 61
    # a minute later the window has room again
    assert isinstance(limiter.take("l6", [scope], 10, 0, 1061.5), Grant)


def test_tpm_is_settled_with_actual_tokens() -> None:
    limiter = MemoryLimiter()
    scope = Scope("k:t", tpm=1000)
    g = limiter.take("a", [scope], 900, 0, 50.0)
    assert isinstance(g, Grant)
    assert isinstance(limiter.take("b", [scope], 200, 0, 50.5), Denial)
    limiter.release(g, 0, 100)  # it really used 100
    assert isinstance(limiter.take("c", [scope], 800, 0, 51.0), Grant)
    too_big = limiter.take("d", [scope], 5000, 0, 52.0)
    assert isinstance(too_big, Denial) and too_big.retry_after is None


def test_spool_commits_rotates_and_adopts(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), segment_bytes=32)
    spool.open()
    for i in range(5):
        spool.append(f'{{"n": {i}}}\n'.encode())
    got = spool.read()
    assert got is not None and len(got[1]) == 5
    spool.committed(got[0], got[2])  # big enough: a new live segment, the old one deleted
    assert len(list(tmp_path.glob("*.seg"))) == 1
    spool.append(b'{"n": 5}\n')
    # a crashed writer: its segment is unlocked once this process closes it
    dead = tmp_path / "ledger-00000000000000000001-1.seg"
    dead.write_bytes(b'{"n": 0}\n{"n": 1}\n{"torn')
    spool.close()
    again = Spool(str(tmp_path))
    again.open()
    seen = []
    while (got := again.read()) is not None:
        seen += got[1]
        again.committed(got[0], got[2])
    assert seen == [b'{"n": 0}', b'{"n": 1}', b'{"n": 5}']
    assert len(list(tmp_path.glob("*.seg"))) == 1  # only the new live one
    again.close()


def _entry(i: int, cost: float | None = 0.01) -> LedgerEntry:
    return LedgerEntry(f"e{i}", f"r{i}", 1_700_000_000.0 + i, "2023-11-14", "k1", "t1", None,
                       "chat", "chat", "chat", "sim", "d", "m", 200, None, 10, 20, 0, 0, 0,
                       cost, 0 if cost is None else 1, "config", 1.5, "[]")


async def test_ledger_writer_is_idempotent(tmp_path: Path) -> None:
    db = await sqlite.open_database(str(tmp_path / "db.sqlite"))
    writer = LedgerWriter(Spool(str(tmp_path / "spool")), db, interval_s=0.05)
    writer.open()
    await writer.start()
    for i in range(10):
        writer.append(_entry(i, None if i == 3 else 0.01))
    await writer.flush()
    # a crash between the insert and the spool's truncation: the same rows come again
    again = [msgspec.structs.astuple(_entry(i)) for i in range(5)]
    await db.executemany(INSERT_LEDGER, again)
    rows = await usage(db, ["key"], 0, 2e9, {})
    assert rows[0].requests == 10 and rows[0].unpriced_requests == 1
    assert rows[0].cost_usd == pytest.approx(0.09)
    await writer.aclose()
    await db.close()


async def _policy(tmp_path: Path, **limits: object) -> tuple[KeyPolicy, Directory, KeyStore]:
    db = await sqlite.open_database(str(tmp_path / "p.sqlite"))
    store = KeyStore(db)
    settings = LimitsSettings(**limits)  # type: ignore[arg-type]
    directory = Directory(store, settings)
    await directory.refresh()
    from polyroute.config.compiled import GatewayConfig, ServerSettings, StorageSettings
    from polyroute.policy.prices import Prices

    config = GatewayConfig("t", ServerSettings(), StorageSettings("x"), {}, {})
    policy = KeyPolicy(directory, MemoryLimiter(), None, Prices(config, PriceCatalog.load()),
                       settings)
    policy.spend_ready = True
    return policy, directory, store


async def test_policy_open_mode_then_keys(tmp_path: Path) -> None:
    from polyroute.policy.admin import AdminService

    policy, directory, store = await _policy(tmp_path)
    assert await policy.authenticate("anything") is ANONYMOUS  # no keys: open mode
    service = AdminService(directory, store, store._db)  # type: ignore[attr-defined]
    await service.put_org(OrgIn(id="acme", total_budget_usd=1.0))
    await service.put_team(TeamIn(id="web", org="acme", models=["chat", "cheap"]))
    created = await service.create_key(KeyIn(team="web", models=["chat"], rpm=2))
    with pytest.raises(AuthenticationFailed):
        await policy.authenticate("anything")
    with pytest.raises(AuthenticationFailed):
        await policy.authenticate(created.key[:-1] + ("A" if created.key[-1] != "A" else "B"))
    principal = await policy.authenticate(created.key)
    assert principal.key_id == created.id and principal.team == "web"
    assert principal.org == "acme" and principal.allowed_models == frozenset({"chat"})
    price = Price(1.0, 2.0)
    with pytest.raises(PermissionDenied):
        await policy.admit(principal, AdmissionRequest("cheap", 10, 10, [price]))
    with pytest.raises(PermissionDenied):  # the org has a budget and the price is unknown
        await policy.admit(principal, AdmissionRequest("chat", 10, 10, [None]))
    tickets = [await policy.admit(principal, AdmissionRequest("chat", 10, 10, [price]))
               for _ in range(2)]
    with pytest.raises(RateLimited) as rpm:
        await policy.admit(principal, AdmissionRequest("chat", 10, 10, [price]))
    assert rpm.value.code == "rpm_limit_exceeded" and created.key not in rpm.value.message
    record = RequestRecord("r", 0.0, "chat", "chat", vendor="v", upstream_model="m",
                           usage=Usage(prompt_tokens=10, completion_tokens=10))
    for ticket in tickets:
        policy.settle(ticket, record)
    await service.revoke_key(created.id)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        await policy.authenticate(created.key)


async def test_a_remembered_secret_still_refuses_every_other(tmp_path: Path) -> None:
    """The HMAC runs once per principal; after it, only the very secret that matched is let
    in, and a principal the directory rebuilt (reload, rotation) is checked afresh."""
    from polyroute.policy.admin import AdminService

    policy, directory, store = await _policy(tmp_path)
    service = AdminService(directory, store, store._db)  # type: ignore[attr-defined]
    created = await service.create_key(KeyIn(rpm=100))
    other = await service.create_key(KeyIn(rpm=100))
    assert (await policy.authenticate(created.key)).key_id == created.id
    assert (await policy.authenticate(created.key)).key_id == created.id  # remembered
    key_id, secret = created.key.removeprefix("sk-pr-").split("-", 1)
    wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for forged in (f"sk-pr-{key_id}-{wrong}",
                   f"sk-pr-{key_id}-{other.key.rsplit('-', 1)[1]}"):  # another key's secret
        with pytest.raises(AuthenticationFailed):
            await policy.authenticate(forged)
    import dataclasses
    before = directory.principals[created.id]
    directory.principals[created.id] = dataclasses.replace(before, digest=b"\0" * 32)
    with pytest.raises(AuthenticationFailed):  # a rebuilt principal's own digest decides
        await policy.authenticate(created.key)
    directory.principals[created.id] = dataclasses.replace(before)
    assert (await policy.authenticate(created.key)).key_id == created.id


async def test_budget_refusal_names_the_scope(tmp_path: Path) -> None:
    from polyroute.policy.admin import AdminService

    policy, directory, store = await _policy(tmp_path)
    service = AdminService(directory, store, store._db)  # type: ignore[attr-defined]
    created = await service.create_key(KeyIn(daily_budget_usd=0.001))
    principal = await policy.authenticate(created.key)
    price = Price(1000.0, 1000.0)  # $0.001 a token
    with pytest.raises(BudgetExceeded) as exc:
        await policy.admit(principal, AdmissionRequest("chat", 1, 1, [price]))
    assert "daily budget" in exc.value.message and exc.value.retry_after is not None


def test_no_module_level_state_in_new_packages() -> None:
    """Each gateway owns its state: the new modules hold only constants at module level."""
    root = Path(__file__).resolve().parent.parent / "polyroute"
    for package in ("policy", "state", "storage", "admin", "pricing"):
        for path in (root / package).glob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "global " not in text, path

