"""The exact response cache (issue 15) through the official SDKs: hits, misses and bypasses
(streamed and not, OpenAI's and Anthropic's dialects), Cache-Control, tenant isolation, the
ledger's $0 hits with the amount saved, /metrics, and a Redis outage served as misses."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import SIM_KEY, gateway_config
from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, RedisServer, admin, new_key, ok
from tests.support.sim import SimServer

PRICE = {"input_per_1m": 1.0, "output_per_1m": 2.0}


def _config(sim: SimServer, **extra: Any) -> dict[str, Any]:
    config = gateway_config(sim, auth={"master_key": "${MASTER}"}, **extra)
    config["model_groups"]["cached"] = {"cache": "deterministic", "deployments": [
        {"provider": "sim", "model": "gpt-4o-mini", "price": PRICE}]}
    config["model_groups"]["cached-all"] = {"cache": "all", "deployments": [
        {"provider": "sim", "model": "gpt-4o-mini", "price": PRICE}]}
    return config


@pytest.fixture(scope="module")
def gw(sim: SimServer) -> Iterator[GatewayProcess]:
    with GatewayProcess(_config(sim), env={"SIM_KEY": SIM_KEY, "MASTER": MASTER_KEY}) as g:
        yield g


def _openai(gw: GatewayProcess, key: str = MASTER_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def _upstream_calls(sim: SimServer) -> int:
    return int(sim.stats()["requests_total"])


def _ask(client: openai.OpenAI, text: str, *, model: str = "cached", temperature: float = 0,
         headers: dict[str, str] | None = None, **extra: Any) -> tuple[Any, Any]:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], temperature=temperature,
        extra_headers=headers or {}, **extra)
    return raw.headers, raw.parse()


def test_hit_miss_bypass_and_cache_control(gw: GatewayProcess, sim: SimServer) -> None:
    client = _openai(gw)
    headers, first = _ask(client, "cache me 1")
    assert headers["x-polyroute-cache"] == "miss" and "age" not in headers
    calls = _upstream_calls(sim)
    headers, second = _ask(client, "cache me 1", user="someone-else",
                           metadata={"trace": "x"}, store=False)
    assert headers["x-polyroute-cache"] == "hit", "user tags must not change the key"
    assert int(headers["age"]) >= 0
    assert _upstream_calls(sim) == calls, "a hit must not reach the upstream"
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.usage is not None and first.usage is not None
    assert second.usage.total_tokens == first.usage.total_tokens
    assert second.choices[0].finish_reason == "stop"

    # Anything that changes the answer is another key.
    for changed in ({"max_tokens": 7}, {"seed": 3}, {"stop": ["zzz"]},
                    {"tools": [{"type": "function", "function": {"name": "f",
                                                                 "parameters": {}}}]}):
        headers, _ = _ask(client, "cache me 1", **changed)
        assert headers["x-polyroute-cache"] == "miss", changed

    # Not deterministic: bypassed, unless the client opts in.
    headers, _ = _ask(client, "cache me 1", temperature=0.7)
    assert headers["x-polyroute-cache"] == "bypass"
    _ask(client, "warm", temperature=0.7, headers={"x-polyroute-cache": "on"})
    headers, _ = _ask(client, "warm", temperature=0.7, headers={"x-polyroute-cache": "on"})
    assert headers["x-polyroute-cache"] == "hit"
    headers, _ = _ask(client, "cache me 1", model="cached-all", temperature=1.0)
    assert headers["x-polyroute-cache"] == "miss"  # a group that caches everything
    headers, _ = _ask(client, "cache me 1", model="chat")
    assert "x-polyroute-cache" not in headers  # a group without a cache

    # Cache-Control.
    calls = _upstream_calls(sim)
    headers, _ = _ask(client, "cache me 1", headers={"Cache-Control": "no-store"})
    assert headers["x-polyroute-cache"] == "bypass"
    headers, _ = _ask(client, "cache me 1", headers={"Cache-Control": "no-cache"})
    assert headers["x-polyroute-cache"] == "miss"
    headers, _ = _ask(client, "cache me 1", headers={"Cache-Control": "max-age=0"})
    assert headers["x-polyroute-cache"] == "miss"
    assert _upstream_calls(sim) == calls + 3
    headers, _ = _ask(client, "cache me 1", headers={"Cache-Control": "max-age=3600"})
    assert headers["x-polyroute-cache"] == "hit"
    time.sleep(1.1)
    headers, _ = _ask(client, "cache me 1", headers={"Cache-Control": "max-age=3600"})
    assert headers["x-polyroute-cache"] == "hit" and int(headers["age"]) >= 1
    headers, _ = _ask(client, "cache me 1", headers={"Cache-Control": "max-age=1"})
    assert headers["x-polyroute-cache"] in ("miss", "hit")  # the no-cache above renewed it
    _ask(client, "cache me 1", headers={"Cache-Control": "no-cache"})


def test_incomplete_answers_are_never_stored(gw: GatewayProcess, sim: SimServer) -> None:
    client = _openai(gw)
    for _ in range(2):
        calls = _upstream_calls(sim)
        headers, answer = _ask(client, "a rather long question to be cut short", max_tokens=1)
        assert answer.choices[0].finish_reason == "length"
        assert headers["x-polyroute-cache"] == "miss"
        assert _upstream_calls(sim) == calls + 1


def test_streamed_miss_replays_as_stream_and_whole(gw: GatewayProcess, sim: SimServer) -> None:
    client = _openai(gw)
    messages = [{"role": "user", "content": "stream me"}]

    def streamed() -> tuple[str, str, Any]:
        raw = client.chat.completions.with_raw_response.create(
            model="cached", messages=messages, temperature=0, stream=True,
            stream_options={"include_usage": True})
        text, usage = "", None
        for chunk in raw.parse():
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if chunk.usage is not None:
                usage = chunk.usage
        return raw.headers["x-polyroute-cache"], text, usage

    outcome, text, usage = streamed()
    assert outcome == "miss" and text and usage is not None
    calls = _upstream_calls(sim)
    outcome2, text2, usage2 = streamed()
    assert (outcome2, text2) == ("hit", text)
    assert usage2 is not None and usage2.completion_tokens == usage.completion_tokens
    headers, whole = _ask(client, "stream me")  # stored from a stream, told whole
    assert headers["x-polyroute-cache"] == "hit"
    assert whole.choices[0].message.content == text
    assert _upstream_calls(sim) == calls


def test_anthropic_dialect_hits_whole_and_streamed(gw: GatewayProcess, sim: SimServer) -> None:
    client = anthropic.Anthropic(base_url=gw.root_url, api_key=MASTER_KEY, max_retries=0)
    # This SDK has no `temperature` parameter any more: sent in the body all the same.
    kwargs: dict[str, Any] = {"model": "cached", "max_tokens": 50,
                              "extra_body": {"temperature": 0},
                              "messages": [{"role": "user", "content": "anthropic cache"}]}
    raw = client.messages.with_raw_response.create(**kwargs)
    assert raw.headers["x-polyroute-cache"] == "miss"
    first = raw.parse()
    calls = _upstream_calls(sim)
    raw = client.messages.with_raw_response.create(**kwargs)
    assert raw.headers["x-polyroute-cache"] == "hit"
    again = raw.parse()
    assert again.content[0].text == first.content[0].text  # type: ignore[union-attr]
    assert again.usage.output_tokens == first.usage.output_tokens
    assert again.stop_reason == "end_turn"
    with client.messages.stream(**kwargs) as stream:
        assert stream.response.headers["x-polyroute-cache"] == "hit"
        final = stream.get_final_message()
    assert final.content[0].text == first.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens == first.usage.output_tokens
    assert final.usage.input_tokens == first.usage.input_tokens
    assert _upstream_calls(sim) == calls


def _ledger(gw: GatewayProcess, request_id: str, timeout: float = 5) -> sqlite3.Row:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(gw.db_path) as conn:
            conn.row_factory = sqlite3.Row
            with contextlib.suppress(sqlite3.OperationalError):
                found = conn.execute("SELECT * FROM ledger WHERE client_request_id = ?",
                                     (request_id,)).fetchall()
                if found:
                    return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no ledger row for {request_id}")


def test_tenants_are_isolated_and_hits_cost_nothing(gw: GatewayProcess) -> None:
    for org in ("org-a", "org-b"):
        ok(admin(gw, "POST", "/admin/orgs", {"id": org}))
        ok(admin(gw, "POST", "/admin/teams", {"id": f"{org}-t1", "org": org}))
    ok(admin(gw, "POST", "/admin/teams", {"id": "org-a-t2", "org": "org-a"}))
    a1 = _openai(gw, new_key(gw, team="org-a-t1"))
    a2 = _openai(gw, new_key(gw, team="org-a-t2"))
    b1 = _openai(gw, new_key(gw, team="org-b-t1"))

    headers, _first = _ask(a1, "tenant secret", headers={"x-request-id": "c-miss"})
    assert headers["x-polyroute-cache"] == "miss"
    headers, _ = _ask(a2, "tenant secret", headers={"x-request-id": "c-hit"})
    assert headers["x-polyroute-cache"] == "hit", "one organisation shares its answers"
    headers, _ = _ask(b1, "tenant secret")
    assert headers["x-polyroute-cache"] == "miss", "another organisation never sees them"

    miss, hit = _ledger(gw, "c-miss"), _ledger(gw, "c-hit")
    assert miss["cache"] == "miss" and miss["cost_usd"] > 0 and miss["saved_usd"] is None
    assert hit["cache"] == "hit" and hit["cost_usd"] == 0
    assert hit["saved_usd"] == pytest.approx(miss["cost_usd"])
    assert hit["prompt_tokens"] == 0 and hit["completion_tokens"] == 0
    assert hit["org"] == "org-a" and hit["team"] == "org-a-t2"

    deadline = time.monotonic() + 5
    while True:  # the usage report sums the ledger: hits and what they saved, per org
        rows = {r["group"]["org"]: r for r in ok(admin(
            gw, "GET", "/admin/usage?by=org&since=1h&model=cached"))["data"]}
        if ("org-a" in rows and "org-b" in rows) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert rows["org-a"]["cache_hits"] == 1
    assert rows["org-a"]["saved_usd"] == pytest.approx(miss["cost_usd"])
    assert rows["org-b"]["cache_hits"] == 0 and rows["org-b"]["saved_usd"] == 0

    # A key that may not use the group gets no cached answer either.
    shut_out = _openai(gw, new_key(gw, team="org-a-t1", models=["chat"]))
    with pytest.raises(openai.PermissionDeniedError):
        _ask(shut_out, "tenant secret", headers={"x-request-id": "c-refused"})
    refused = _ledger(gw, "c-refused")
    assert refused["status"] == 403 and refused["cache"] is None
    assert refused["cost_usd"] == 0 and refused["saved_usd"] is None

    status, body = gw.get("/metrics")
    text = body.decode()
    assert status == 200
    assert 'polyroute_cache_requests_total{model_group="cached",result="hit"}' in text
    saved = [line for line in text.splitlines()
             if line.startswith('polyroute_cache_saved_usd_total{model_group="cached"}')]
    assert saved and float(saved[0].rsplit(" ", 1)[1]) > 0
    ratio = [line for line in text.splitlines() if line.startswith("polyroute_cache_hit_ratio")]
    assert ratio and 0 < float(ratio[0].rsplit(" ", 1)[1]) < 1
    assert any(line.startswith("polyroute_cache_bytes ") and float(line.split()[1]) > 0
               for line in text.splitlines())


def test_redis_backend_shared_and_outage_serves_misses(sim: SimServer) -> None:
    redis = RedisServer()
    try:
        config = _config(sim, cache={"backend": "redis"},
                         state={"redis_url": redis.url, "timeout_s": 0.2})
        env = {"SIM_KEY": SIM_KEY, "MASTER": MASTER_KEY}
        with GatewayProcess(config, env=env) as one, GatewayProcess(config, env=env) as two:
            headers, first = _ask(_openai(one), "shared by replicas")
            assert headers["x-polyroute-cache"] == "miss"
            deadline = time.monotonic() + 5
            while True:  # stored in the background
                headers, second = _ask(_openai(two), "shared by replicas")
                if headers["x-polyroute-cache"] == "hit" or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert headers["x-polyroute-cache"] == "hit"
            assert second.choices[0].message.content == first.choices[0].message.content

            redis.stop()
            for client in (_openai(one), _openai(two)):
                headers, answer = _ask(client, "shared by replicas")
                assert headers["x-polyroute-cache"] == "miss"
                assert answer.choices[0].message.content == first.choices[0].message.content
            started = time.monotonic()
            headers, _ = _ask(_openai(one), "another question during the outage")
            assert headers["x-polyroute-cache"] == "miss"
            assert time.monotonic() - started < 2
            _status, body = one.get("/metrics")
            assert any(line.startswith("polyroute_cache_backend_errors ")
                       and float(line.split()[1]) > 0 for line in body.decode().splitlines())
    finally:
        redis.close()


def test_responses_dialect_shares_answers_with_chat(gw: GatewayProcess, sim: SimServer) -> None:
    """Requests are keyed in the canonical model: a Responses-API client asking what a chat
    client asked gets the same stored answer, whole and streamed."""
    client = _openai(gw)
    headers, first = _ask(client, "one question, two dialects")
    assert headers["x-polyroute-cache"] == "miss"
    calls = _upstream_calls(sim)
    raw = client.responses.with_raw_response.create(
        model="cached", input=[{"role": "user", "content": "one question, two dialects"}],
        temperature=0)
    assert raw.headers["x-polyroute-cache"] == "hit"
    assert raw.parse().output_text == first.choices[0].message.content
    with client.responses.stream(
            model="cached", temperature=0,
            input=[{"role": "user", "content": "one question, two dialects"}]) as stream:
        final = stream.get_final_response()
    assert final.output_text == first.choices[0].message.content
    assert final.usage is not None and final.usage.output_tokens == first.usage.completion_tokens
    assert _upstream_calls(sim) == calls


def test_a_governed_key_neither_uses_nor_fills_the_cache(gw: GatewayProcess,
                                                          sim: SimServer) -> None:
    """A hit would skip the key's data-governance policy (issue 11): a deny-list here. The
    same question, cached for another key of the tenant, is refused for the governed key, and
    the governed key's own answers are not stored."""
    text = "what is the status of Project Falcon?"
    ok(admin(gw, "POST", "/admin/teams", {"id": "falcon-team"}))  # one tenant for both keys
    plain = _openai(gw, new_key(gw, team="falcon-team"))
    _ask(plain, text)
    headers, _ = _ask(plain, text)
    assert headers["x-polyroute-cache"] == "hit"
    governed = _openai(gw, new_key(gw, team="falcon-team",
                                   governance={"deny_terms": ["Project Falcon"]}))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _ask(governed, text)
    assert "rule deny_terms" in str(refused.value)
    calls = _upstream_calls(sim)
    for _ in range(2):
        headers, _ = _ask(governed, "an ordinary question for the governed key")
        assert headers["x-polyroute-cache"] == "bypass"
    assert _upstream_calls(sim) == calls + 2
