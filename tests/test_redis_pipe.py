"""The limiter's pipelined Redis connection (state/resp.py), against the real Redis: replies
reach the call that asked, also when calls are concurrent, cancelled or the connection dies;
errors are redis-py's; a server that forgot a script gets it again; and admissions through it
stay exact."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from polyroute.state.limits import Grant, Scope
from polyroute.state.redis_limits import RedisLimiter, is_script_error, limits_client
from polyroute.state.resp import ScriptPipe

URL = "redis://127.0.0.1:6379/9"


@pytest.fixture
async def pipe() -> AsyncIterator[ScriptPipe]:
    made = ScriptPipe.of(aioredis.from_url(URL))
    assert made is not None
    yield made
    await made.aclose()


async def test_concurrent_calls_each_get_their_own_reply(pipe: ScriptPipe) -> None:
    replies = await asyncio.gather(*(pipe.call("ECHO", f"m{i}") for i in range(500)))
    assert replies == [f"m{i}".encode() for i in range(500)]


async def test_a_cancelled_call_does_not_shift_the_replies(pipe: ScriptPipe) -> None:
    empty = f"polyroute:test:{uuid.uuid4().hex}"
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await pipe.call("BLPOP", empty, 0.3)  # answers nil after 0.3 s
    assert await pipe.call("ECHO", "after") == b"after"


async def test_the_selected_database_is_the_clients() -> None:
    key = f"polyroute:test:{uuid.uuid4().hex}"
    client = aioredis.from_url(URL)
    pipe = ScriptPipe.of(client)
    assert pipe is not None
    try:
        assert await pipe.call("SET", key, "v", "PX", 5000) == b"OK"
        assert await client.get(key) == b"v"
    finally:
        await client.delete(key)
        await client.aclose()
        await pipe.aclose()


async def test_errors_are_redis_pys_and_a_forgotten_script_is_sent_again(
        pipe: ScriptPipe) -> None:
    with pytest.raises(ResponseError) as info:
        await pipe.evalsha("0" * 40, "return redis.call('NO_SUCH_COMMAND')", [])
    assert is_script_error(info.value)
    script = f"return {{ARGV[1], '{uuid.uuid4().hex}'}}"  # a script the server never saw
    client = aioredis.from_url(URL)
    sha = client.register_script(script).sha
    await client.aclose()
    got = await pipe.evalsha(sha, script, ["x"])
    assert got[0] == b"x"
    assert await pipe.call("SCRIPT", "EXISTS", sha) == [1]  # EVAL cached it


async def test_a_lost_connection_fails_its_calls_and_the_next_call_reconnects(
        pipe: ScriptPipe) -> None:
    own_id = await pipe.call("CLIENT", "ID")
    empty = f"polyroute:test:{uuid.uuid4().hex}"
    waiting = asyncio.ensure_future(pipe.call("BLPOP", empty, 5))
    await asyncio.sleep(0.1)
    killer = aioredis.from_url(URL)
    await killer.execute_command("CLIENT", "KILL", "ID", own_id)
    await killer.aclose()
    with pytest.raises(RedisConnectionError):
        async with asyncio.timeout(3):
            await waiting
    assert await pipe.call("ECHO", "again") == b"again"
    assert await pipe.call("CLIENT", "ID") != own_id


def test_only_connections_it_speaks_get_a_pipe() -> None:
    assert ScriptPipe.of(aioredis.from_url("redis://127.0.0.1:6379/9")) is not None
    assert ScriptPipe.of(aioredis.from_url("unix:///tmp/none.sock?db=2")) is not None
    assert ScriptPipe.of(aioredis.from_url("rediss://127.0.0.1:6380/0")) is None
    assert ScriptPipe.of(limits_client("redis://127.0.0.1:6379/9", 0.1)) is not None


async def test_concurrent_admissions_over_one_pipe_stay_exact() -> None:
    """200 admissions at once against a concurrency limit of 37, over the pipelined
    connection: exactly 37 are granted, and after settling all of them 37 more are."""
    client = limits_client(URL, 0.5)
    prefix = f"polyroute:test:{uuid.uuid4().hex}:{{lim}}:"

    async def no_spend() -> dict[str, int]:
        return {}

    limiter = RedisLimiter(client, lease_ttl_s=30, timeout_s=0.5, load_spend=no_spend,
                           prefix=prefix)
    try:
        await limiter.ensure_seeded()
        scope = Scope("k:exact", rpm=10_000, tpm=10**9, max_concurrent=37)
        for _ in range(2):
            got = await asyncio.gather(*(limiter.acquire(uuid.uuid4().hex, [scope], 10, 0, 0.0)
                                         for _ in range(200)))
            grants = [g for g in got if isinstance(g, Grant)]
            assert len(grants) == 37
            for grant in grants:
                limiter.release(grant, 0, 10)
            deadline = asyncio.get_running_loop().time() + 10
            while limiter.queued or await client.zcard(f"{prefix}l:k:exact"):
                assert asyncio.get_running_loop().time() < deadline, "settling never ended"
                await asyncio.sleep(0.01)
        assert limiter.healthy and limiter.rejected_settlements == 0
    finally:
        await limiter.aclose()
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_answered_at_counts_replies_not_error_replies(pipe: ScriptPipe) -> None:
    """The limiter's watchdog skips its ping when the pipe heard Redis answer just now; an
    error reply (BUSY, LOADING …) must not count as that evidence."""
    import time

    assert pipe.answered_at == 0.0  # not connected yet
    assert await pipe.call("ECHO", "x") == b"x"
    answered = pipe.answered_at
    assert 0 < time.monotonic() - answered < 1.0
    await asyncio.sleep(0.01)
    assert isinstance(await pipe.call("NOSUCHCOMMAND"), ResponseError)
    assert pipe.answered_at == answered
    sent = pipe.submit("ECHO", "y")  # the synchronous send the settlements use
    assert sent is not None and await sent == b"y" and pipe.answered_at > answered
    pipe.reset()
    assert pipe.submit("ECHO", "z") is None and pipe.answered_at == 0.0


async def test_a_freed_slot_is_free_for_the_next_admission_at_once() -> None:
    """Settlements wait (up to 5 ms) to share a write, but never behind the next admission:
    a client with one concurrent slot, asking again the moment its answer came, is admitted
    every time, and its settlements all arrive without a task per drain."""
    client = limits_client(URL, 0.5)
    prefix = f"polyroute:test:{uuid.uuid4().hex}:{{lim}}:"

    async def no_spend() -> dict[str, int]:
        return {}

    limiter = RedisLimiter(client, lease_ttl_s=30, timeout_s=0.5, load_spend=no_spend,
                           prefix=prefix)
    try:
        await limiter.ensure_seeded()
        scope = Scope("k:one", rpm=10_000, tpm=10**9, max_concurrent=1)
        for _ in range(50):
            grant = await limiter.acquire(uuid.uuid4().hex, [scope], 10, 0, 0.0)
            assert isinstance(grant, Grant), grant
            limiter.release(grant, 0, 10)
        assert limiter.queued == 1 and limiter._drain is None  # the last one waits its turn
        await asyncio.sleep(0.05)
        assert limiter.queued == 0 and await client.zcard(f"{prefix}l:k:one") == 0
        assert limiter.healthy and limiter.rejected_settlements == 0
    finally:
        await limiter.aclose()
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
