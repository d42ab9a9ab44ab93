"""Issue 10, money and limits, each written as the attack with the official SDKs against a
running gateway with keys: allow-lists on every candidate, streams that are never free,
``n`` and absurd integers, the overspend bound per request shape, and deleting a team or an
organisation."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, admin, new_key, ok
from tests.support.sim import SimServer

PRICE = {"input_per_1m": 100.0, "output_per_1m": 100.0}
SECRET_KEY = "sk-secret-upstream-77c1"
LONG_TEXT = " ".join(f"word{i}" for i in range(120))  # 240 simulator tokens, streamed slowly
DEFAULT_MAX = 40  # limits.default_max_output_tokens of the gateway below


@pytest.fixture(scope="module")
def sims() -> Iterator[tuple[SimServer, SimServer]]:
    """``open``: what keys may use; ``secret``: what they may not (it must see no chat)."""
    with SimServer(api_key=SIM_KEY, text=LONG_TEXT, tokens_per_second=100) as open_, \
            SimServer(api_key=SECRET_KEY) as secret:
        yield open_, secret


@pytest.fixture(scope="module")
def gw(sims: tuple[SimServer, SimServer]) -> Iterator[GatewayProcess]:
    open_, secret = sims
    config: dict[str, Any] = {
        "providers": {
            "sim": {"base_url": open_.base_url, "api_key": "${SIM_KEY}"},
            "nousage": {"base_url": open_.base_url, "api_key": "${SIM_KEY}",
                        "quirks": {"stream_usage": False}},
            "hidden": {"base_url": secret.base_url, "api_key": "${SECRET_KEY}",
                       "any_model": True},
        },
        "model_groups": {
            "chat": {"deployments": [{"provider": "sim", "model": "gpt-4o-mini",
                                      "price": PRICE}]},
            # Fails (a fault rule on its model) over to 'secret', which keys may not use.
            "guarded": {"deployments": [{"provider": "sim", "model": "gpt-4o",
                                         "price": PRICE}], "fallbacks": ["secret"]},
            "echo": {"deployments": [{"provider": "sim", "model": "echo", "price": PRICE}]},
            "quiet": {"deployments": [{"provider": "nousage", "model": "gpt-4o-mini",
                                       "price": PRICE}]},
            "secret": {"deployments": [{"provider": "hidden", "model": "gpt-4o",
                                        "price": PRICE}]},
        },
        "auth": {"master_key": "${PR_MASTER}"},
        "limits": {"default_max_output_tokens": DEFAULT_MAX},
        "storage": {"flush_interval_s": 0.1},
    }
    env = {"SIM_KEY": SIM_KEY, "SECRET_KEY": SECRET_KEY, "PR_MASTER": MASTER_KEY}
    with GatewayProcess(config, env) as gateway:
        yield gateway


def oai(gw: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=gw.base_url, max_retries=0, timeout=30)


def aoai(gw: GatewayProcess, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=gw.base_url, max_retries=0, timeout=60)


def chat_posts(sim: SimServer) -> int:
    return int(sim.stats()["requests_by_path"].get("/v1/chat/completions", 0))


def ledger(gw: GatewayProcess, request_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = ok(admin(gw, "GET", f"/admin/ledger/{request_id}"))["data"]
        if rows or time.monotonic() > deadline:
            assert rows, f"no ledger row for {request_id}"
            return dict(rows[0])
        time.sleep(0.05)


def spent(gw: GatewayProcess, key: str, requests: int, timeout_s: float = 15.0) -> float:
    """The key's spend in the ledger, once its ``requests`` rows are all written."""
    key_id = key.split("-")[2]
    deadline = time.monotonic() + timeout_s
    while True:
        rows = ok(admin(gw, "GET", f"/admin/usage?by=key&key={key_id}&since=1h"))["data"]
        if (rows and rows[0]["requests"] >= requests) or time.monotonic() > deadline:
            assert rows and rows[0]["requests"] == requests, rows
            return float(rows[0]["cost_usd"] or 0.0)
        time.sleep(0.1)


# -- 1. allow-lists hold on every candidate ------------------------------------------------

def test_fallbacks_and_models_list_never_reach_a_group_the_key_may_not_use(
        gw: GatewayProcess, sims: tuple[SimServer, SimServer]) -> None:
    open_, secret = sims
    key = new_key(gw, models=["guarded", "echo"])
    before = chat_posts(secret)
    client = oai(gw, key)
    open_.set_rules([{"fault": "server_error", "model": "gpt-4o"}])
    try:
        # 'chat' fails over to its configured fallback 'secret': the key may not use it.
        with pytest.raises(openai.InternalServerError) as failed:
            client.chat.completions.create(model="guarded", max_tokens=5,
                                           messages=[{"role": "user", "content": "hi"}])
        attempts = failed.value.response.headers["x-polyroute-attempts"]
        assert attempts.startswith("secret:not_allowed,") and "hidden" not in attempts
        # The request's own list: a configured group and an open '<vendor>/<model>'.
        for extra in ("secret", "hidden/gpt-4o"):
            with pytest.raises(openai.InternalServerError) as failed:
                client.chat.completions.create(
                    model="guarded", max_tokens=5, messages=[{"role": "user", "content": "hi"}],
                    extra_body={"models": [extra]})
            assert f"{extra}:not_allowed" in failed.value.response.headers[
                "x-polyroute-attempts"]
        # An allowed extra group still serves; the disallowed one beside it is skipped.
        raw = client.chat.completions.with_raw_response.create(
            model="guarded", max_tokens=5, messages=[{"role": "user", "content": "hi"}],
            extra_body={"models": ["secret", "echo"]})
        assert "secret:not_allowed" in raw.headers["x-polyroute-attempts"]
        assert raw.parse().choices[0].message.content == "hi"
        # Streams, the Responses API and Anthropic's Messages API take the same route.
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="guarded", max_tokens=5, stream=True,
                                           messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.InternalServerError):
            client.responses.create(model="guarded", input="hi", max_output_tokens=16)
        claude = anthropic.Anthropic(api_key=key, base_url=gw.root_url, max_retries=0,
                                 timeout=30)
        with pytest.raises(anthropic.InternalServerError) as refused:
            claude.messages.create(model="guarded", max_tokens=5,
                                   messages=[{"role": "user", "content": "hi"}])
        assert "secret:not_allowed" in refused.value.response.headers["x-polyroute-attempts"]
    finally:
        open_.clear_rules()
    assert chat_posts(secret) == before  # never tried
    # Asking for it directly is refused, as before.
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="secret", max_tokens=5,
                                       messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="hidden/gpt-4o", max_tokens=5,
                                       messages=[{"role": "user", "content": "hi"}])
    assert chat_posts(secret) == before


def test_model_list_and_404_name_only_what_the_key_may_use(gw: GatewayProcess) -> None:
    key = new_key(gw, models=["chat"])
    client = oai(gw, key)
    assert [m.id for m in client.models.list()] == ["chat"]
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    message = missing.value.body["message"]  # type: ignore[index]
    assert "chat" in message and "secret" not in message and "hidden" not in message
    with pytest.raises(openai.NotFoundError) as missing:  # also in the request's own list
        client.chat.completions.create(model="chat", extra_body={"models": ["nope"]},
                                       messages=[{"role": "user", "content": "x"}])
    assert "secret" not in missing.value.body["message"]  # type: ignore[index]
    master = {m.id for m in oai(gw, MASTER_KEY).models.list()}
    assert {"chat", "guarded", "echo", "quiet", "secret"} <= master


# -- 2. streams are never free -------------------------------------------------------------

async def test_a_client_that_hangs_up_before_the_usage_chunk_is_charged(
        gw: GatewayProcess) -> None:
    key = new_key(gw, daily_budget_usd=1.0)
    client = aoai(gw, key)
    stream = await client.chat.completions.create(
        model="chat", max_tokens=200, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Tell me a long story."}],
        extra_headers={"x-request-id": "money-hangup"})
    read = ""
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            read += chunk.choices[0].delta.content
        if len(read) > 100:
            break
    await stream.close()  # hang up: the usage chunk never reaches the client
    await client.close()
    row = ledger(gw, "money-hangup")
    assert row["status"] == 499 and row["usage_estimated"] == 1, str(row)
    assert row["completion_tokens"] >= len(read) // 6 and row["prompt_tokens"] > 0
    assert row["cost_usd"] > 0
    status = ok(admin(gw, "GET", f"/admin/keys/{key.split('-')[2]}/budget"))
    assert status["spent_today_usd"] == pytest.approx(row["cost_usd"])


def test_hanging_up_does_not_refund_the_streams_tokens_per_minute(gw: GatewayProcess) -> None:
    key = new_key(gw, tpm=200)
    client = oai(gw, key)
    hello = [{"role": "user", "content": "Say hello."}]  # estimated at about 10 tokens
    stream = client.chat.completions.create(model="chat", max_tokens=150, stream=True,
                                            messages=hello)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    time.sleep(0.5)  # the gateway notices and settles
    # About 10 (prompt) + a few (what was streamed) stay counted: a request reserving 195 no
    # longer fits the 200. Were the stream refunded in full, it would.
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="chat", max_tokens=185, messages=hello)
    assert refused.value.code == "tpm_limit_exceeded"
    client.chat.completions.create(model="chat", max_tokens=20, messages=hello)


def test_a_provider_that_never_reports_stream_usage_is_charged(gw: GatewayProcess) -> None:
    key = new_key(gw, daily_budget_usd=1.0)
    stream = oai(gw, key).chat.completions.create(
        model="quiet", max_tokens=500, stream=True,
        messages=[{"role": "user", "content": "Tell me a long story."}],
        extra_headers={"x-request-id": "money-quiet"})
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert len(text) == len(LONG_TEXT)
    row = ledger(gw, "money-quiet")
    assert row["status"] == 200 and row["usage_estimated"] == 1
    # 240 simulator tokens streamed; the estimate counts about 4 characters a token.
    assert 150 <= row["completion_tokens"] <= 400 and row["cost_usd"] > 0


def test_an_answer_without_usage_is_charged_an_estimate() -> None:
    """An OpenAI-compatible server that omits ``usage`` from whole answers."""
    import threading

    from aiohttp import web

    answer = "Lorem ipsum dolor sit amet, " * 20  # 560 characters: about 140 tokens

    async def chat(request: web.Request) -> web.Response:
        return web.json_response({
            "id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": "x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                         "finish_reason": "stop"}]})

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    config = {
        "providers": {"bare": {"base_url": f"http://127.0.0.1:{port}/v1", "auth": "none"}},
        "model_groups": {"bare": {"deployments": [
            {"provider": "bare", "model": "x", "price": PRICE}]}},
        "auth": {"master_key": "${PR_MASTER}"},
        "storage": {"flush_interval_s": 0.1},
    }
    try:
        with GatewayProcess(config, {"PR_MASTER": MASTER_KEY}) as gw:
            key = new_key(gw, daily_budget_usd=1.0)
            got = oai(gw, key).chat.completions.create(
                model="bare", max_tokens=500, messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-request-id": "money-bare"})
            assert got.choices[0].message.content == answer and got.usage is None
            row = ledger(gw, "money-bare")
            assert row["usage_estimated"] == 1 and row["cost_usd"] > 0
            assert 100 <= row["completion_tokens"] <= 200
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_a_whole_stream_with_usage_is_charged_the_vendors_count(gw: GatewayProcess) -> None:
    key = new_key(gw)
    stream = oai(gw, key).chat.completions.create(
        model="chat", max_tokens=30, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Say hello."}],
        extra_headers={"x-request-id": "money-whole"})
    usage = next(c.usage for c in stream if c.usage is not None)
    row = ledger(gw, "money-whole")
    assert row["usage_estimated"] == 0 and row["completion_tokens"] == usage.completion_tokens


# -- 3. n, absurd integers, and the bound for every shape ----------------------------------

@pytest.mark.parametrize("field,value", [
    ("max_tokens", -10), ("max_tokens", -10**30), ("max_tokens", 10**30), ("max_tokens", 0),
    ("max_completion_tokens", -1), ("max_completion_tokens", 10**30), ("n", 0), ("n", -3),
    ("n", 10**30), ("n", 129)])
def test_absurd_integers_are_refused_in_the_openai_dialect(
        gw: GatewayProcess, field: str, value: int) -> None:
    client = oai(gw, new_key(gw))
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}],
                                       extra_body={field: value})
    assert bad.value.status_code == 400
    assert bad.value.body["param"] == field  # type: ignore[index]
    assert bad.value.body["type"] == "invalid_request_error"  # type: ignore[index]


@pytest.mark.parametrize("value", [-10, -10**30, 10**30, 0])
def test_absurd_integers_are_refused_in_the_other_dialects(
        gw: GatewayProcess, value: int) -> None:
    key = new_key(gw)
    claude = anthropic.Anthropic(api_key=key, base_url=gw.root_url, max_retries=0,
                                 timeout=30)
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(model="chat", max_tokens=value,
                               messages=[{"role": "user", "content": "x"}])
    assert bad.value.body["type"] == "error"  # type: ignore[index]
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "max_tokens" in bad.value.body["error"]["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as refused:
        oai(gw, key).responses.create(model="chat", input="x", max_output_tokens=value)
    assert refused.value.body["param"] == "max_output_tokens"  # type: ignore[index]


def test_n_is_part_of_the_reservation(gw: GatewayProcess) -> None:
    """The issue's attack: n=128 on a $0.06 budget spent 43 times the budget."""
    key = new_key(gw, daily_budget_usd=0.06)
    client = oai(gw, key)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="chat", n=128, max_tokens=30,
                                       messages=[{"role": "user", "content": "Say hello."}])
    assert refused.value.code == "budget_exceeded"
    assert spent(gw, key, 1) == 0


Shape = Callable[[str], Awaitable[Any]]


def shapes(gw: GatewayProcess) -> dict[str, Shape]:
    """Request shapes, each as a coroutine factory taking a key. Budgets below fit ~3."""
    user = [{"role": "user", "content": "Say hello."}]
    tool = {"type": "function", "function": {"name": "lookup", "description": "Look it up.",
                                             "parameters": {"type": "object", "properties": {
                                                 "q": {"type": "string"}}}}}
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}

    async def plain(key: str) -> Any:
        async with aoai(gw, key) as c:
            return await c.chat.completions.create(model="chat", max_tokens=30, messages=user)

    async def n_choices(key: str) -> Any:
        async with aoai(gw, key) as c:
            return await c.chat.completions.create(model="chat", max_tokens=30, n=3,
                                                   messages=user)

    async def no_max_tokens(key: str) -> Any:  # the echo model repeats 240 tokens
        async with aoai(gw, key) as c:
            return await c.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": LONG_TEXT}])

    async def tools_and_calls(key: str) -> Any:
        messages: list[Any] = [*user, {"role": "assistant", "tool_calls": [{
            "id": "call_1", "type": "function", "function": {
                "name": "lookup", "arguments": '{"q": "' + "x" * 400 + '"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "found"}]
        async with aoai(gw, key) as c:
            return await c.chat.completions.create(
                model="chat", max_tokens=30, messages=messages, tools=[tool],
                response_format={"type": "json_object"})

    async def images(key: str) -> Any:
        async with aoai(gw, key) as c:
            return await c.chat.completions.create(
                model="chat", max_tokens=30,
                messages=[{"role": "user", "content": [{"type": "text", "text": "What?"},
                                                       image]}])

    async def stream_with_usage(key: str) -> Any:
        async with aoai(gw, key) as c:
            stream = await c.chat.completions.create(
                model="chat", max_tokens=30, messages=user, stream=True,
                stream_options={"include_usage": True})
            return [chunk async for chunk in stream]

    async def stream_hung_up(key: str) -> Any:
        async with aoai(gw, key) as c:
            stream = await c.chat.completions.create(model="chat", max_tokens=60,
                                                     messages=user, stream=True)
            async for _ in stream:
                break
            await stream.close()

    async def stream_without_usage(key: str) -> Any:
        async with aoai(gw, key) as c:
            stream = await c.chat.completions.create(model="quiet", messages=user,
                                                     stream=True)
            return [chunk async for chunk in stream]

    async def anthropic_messages(key: str) -> Any:
        async with anthropic.AsyncAnthropic(api_key=key, base_url=gw.root_url,
                                            max_retries=0) as c:
            return await c.messages.create(model="echo", max_tokens=30, messages=[
                {"role": "user", "content": LONG_TEXT}])

    async def responses(key: str) -> Any:
        async with aoai(gw, key) as c:
            return await c.responses.create(model="echo", input=LONG_TEXT)

    return {f.__name__: f for f in (plain, n_choices, no_max_tokens, tools_and_calls, images,
                                    stream_with_usage, stream_hung_up, stream_without_usage,
                                    anthropic_messages, responses)}


SHAPES = {  # shape → a budget (USD) that fits a few of its worst cases at $100 per 1M tokens
    "plain": 0.05, "n_choices": 0.05, "no_max_tokens": 0.1, "tools_and_calls": 0.1,
    "images": 1.0, "stream_with_usage": 0.05, "stream_hung_up": 0.05,
    "stream_without_usage": 0.05, "anthropic_messages": 0.1, "responses": 0.1}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("shape", SHAPES)
async def test_concurrent_requests_of_every_shape_never_overspend(
        gw: GatewayProcess, shape: str) -> None:
    """30 at once on a budget that fits a few: spend never exceeds it (the zero bound of
    docs/keys-and-budgets.md), and some are served."""
    budget = SHAPES[shape]
    key = new_key(gw, daily_budget_usd=budget)
    run = shapes(gw)[shape]
    outcomes = await asyncio.gather(*(run(key) for _ in range(30)), return_exceptions=True)
    served = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert served, refused[:1]
    for error in refused:  # only ever the budget
        assert isinstance(error, openai.RateLimitError | anthropic.RateLimitError), error
    assert spent(gw, key, len(outcomes)) <= budget + 1e-12


# -- 4. deleting a team or an organisation does not lift its restrictions ------------------

def test_deleting_a_team_or_an_organisation_revokes_its_keys(gw: GatewayProcess) -> None:
    ok(admin(gw, "POST", "/admin/orgs", {"id": "acme-money", "daily_budget_usd": 0.01}))
    ok(admin(gw, "POST", "/admin/teams", {"id": "search-money", "org": "acme-money",
                                           "models": ["chat"]}))
    ok(admin(gw, "POST", "/admin/teams", {"id": "ads-money", "org": "acme-money",
                                           "rpm": 5}))
    search = new_key(gw, team="search-money")
    ads = new_key(gw, team="ads-money")
    loose = new_key(gw)  # belongs to nothing: untouched by either deletion
    hello = [{"role": "user", "content": "Say hello."}]
    for key in (search, ads, loose):
        oai(gw, key).chat.completions.create(model="chat", max_tokens=5, messages=hello)
    with pytest.raises(openai.PermissionDeniedError):  # the team's allow-list
        oai(gw, search).chat.completions.create(model="echo", max_tokens=5, messages=hello)

    body = ok(admin(gw, "DELETE", "/admin/teams/search-money"))
    assert body["revoked_keys"] == [search.split("-")[2]]
    with pytest.raises(openai.AuthenticationError):  # not: served without the allow-list
        oai(gw, search).chat.completions.create(model="echo", max_tokens=5, messages=hello)
    assert ok(admin(gw, "GET", f"/admin/keys/{search.split('-')[2]}"))["revoked"] is True
    # Creating the team again does not bring its old keys back.
    ok(admin(gw, "POST", "/admin/teams", {"id": "search-money", "org": "acme-money"}))
    with pytest.raises(openai.AuthenticationError):
        oai(gw, search).chat.completions.create(model="chat", max_tokens=5, messages=hello)

    body = ok(admin(gw, "DELETE", "/admin/orgs/acme-money"))
    assert sorted(body["deleted_teams"]) == ["ads-money", "search-money"]
    assert body["revoked_keys"] == [ads.split("-")[2]]
    with pytest.raises(openai.AuthenticationError):  # not: served without the org's budget
        oai(gw, ads).chat.completions.create(model="chat", max_tokens=5, messages=hello)
    assert admin(gw, "GET", "/admin/teams/ads-money")[0] == 404
    oai(gw, loose).chat.completions.create(model="chat", max_tokens=5, messages=hello)


# -- the estimates themselves (no gateway) --------------------------------------------------

def _estimate(body: dict[str, Any]) -> int:
    from polyroute.engine.estimate import estimate_input_tokens
    from polyroute.surface.openai.decode import chat_request

    return estimate_input_tokens(chat_request(json.dumps({"model": "m", **body}).encode()))


def test_the_input_estimate_counts_everything_that_reaches_the_upstream() -> None:
    user = [{"role": "user", "content": "hi"}]
    base = _estimate({"messages": user})
    assert base < 20
    call = {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
        "name": "f", "arguments": json.dumps({"q": "x" * 4000})}}]}
    assert _estimate({"messages": [*user, call]}) >= base + 1000
    schema = {"type": "json_schema", "json_schema": {"name": "o", "schema": {
        "type": "object", "description": "y" * 4000}}}
    assert _estimate({"messages": user, "response_format": schema}) >= base + 1000
    functions = [{"name": "f", "description": "z" * 4000, "parameters": {}}]
    assert _estimate({"messages": user, "functions": functions}) >= base + 1000
    prediction = {"type": "content", "content": "p" * 4000}
    assert _estimate({"messages": user, "prediction": prediction}) >= base + 1000
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    assert _estimate({"messages": [{"role": "user", "content": [image, image]}]}) >= 5400
    audio = {"type": "input_audio", "input_audio": {"data": "A" * 240_000, "format": "wav"}}
    assert _estimate({"messages": [{"role": "user", "content": [audio]}]}) >= 10_000
    pdf = {"type": "file", "file": {"file_data": "data:application/pdf;base64," + "B" * 40_000}}
    assert _estimate({"messages": [{"role": "user", "content": [pdf]}]}) >= 30_000
    cjk = "漢" * 1000
    assert _estimate({"messages": [{"role": "user", "content": cjk}]}) >= 1250


def test_n_and_prediction_are_in_the_output_reservation() -> None:
    from polyroute.engine.gateway import reservation
    from polyroute.policy.types import AdmissionRequest
    from polyroute.surface.openai.decode import chat_request

    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 128,
            "max_tokens": 30, "prediction": {"type": "content", "content": "q" * 400}}
    r = reservation(chat_request(json.dumps(body).encode()))
    admission = AdmissionRequest("m", r.input_tokens, r.max_output_tokens, [], r.choices,
                                 r.extra_output_tokens)
    assert admission.output_tokens(default=4096) >= 128 * 30 + 100
    both = {**body, "max_completion_tokens": 10, "max_tokens": 1000, "n": 1}
    assert reservation(chat_request(json.dumps(both).encode())).max_output_tokens == 1000
    no_limit = AdmissionRequest("m", 10, None, [], 2)
    assert no_limit.output_tokens(default=50) == 100


def test_a_stream_without_usage_is_billed_an_estimate_within_its_output_limit() -> None:
    from polyroute.model.record import RequestRecord
    from polyroute.model.usage import Usage
    from polyroute.policy.keyed import billed_usage

    record = RequestRecord("r", 0.0, "chat", "m", stream=True, ttft_s=0.1,
                           estimated_input_tokens=50, output_units=400)
    usage, estimated = billed_usage(record)
    assert estimated and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (50, 100)
    record.output_limit = 30
    assert billed_usage(record)[0].completion_tokens == 30  # type: ignore[union-attr]
    record.usage = Usage(prompt_tokens=40, completion_tokens=0)  # Anthropic's first block
    record.error_class = "client_closed"
    usage, estimated = billed_usage(record)
    assert estimated and usage is not None and usage.prompt_tokens == 40
    assert usage.completion_tokens == 30
    record.error_class, record.usage = None, Usage(prompt_tokens=9, completion_tokens=7)
    assert billed_usage(record) == (record.usage, False)  # a whole stream: the vendor's count
    never_opened = RequestRecord("r", 0.0, "chat", "m", stream=True, output_units=400)
    assert billed_usage(never_opened) == (None, False)
    # A whole answer without usage (a provider that omits it): estimated too.
    whole = RequestRecord("r", 0.0, "chat", "m", estimated_input_tokens=20, output_units=40)
    usage, estimated = billed_usage(whole)
    assert estimated and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (20, 10)
    whole.error_class = "upstream_error"  # a failure is charged nothing
    assert billed_usage(whole) == (None, False)


async def test_a_key_whose_team_an_older_version_deleted_fails_closed(tmp_path: Any) -> None:
    """Before this fix, deleting a team left its keys unrevoked in the database: such keys
    must not come back to life without the team's limits."""
    from polyroute.config.compiled import LimitsSettings
    from polyroute.policy.admin import AdminService
    from polyroute.policy.directory import Directory
    from polyroute.policy.entities import KeyIn, OrgIn, TeamIn
    from polyroute.storage import sql, sqlite
    from polyroute.storage.key_store import KeyStore

    db = await sqlite.open_database(str(tmp_path / "old.sqlite"))
    store = KeyStore(db)
    directory = Directory(store, LimitsSettings())
    await directory.refresh()
    service = AdminService(directory, store, db)
    await service.put_org(OrgIn(id="o", daily_budget_usd=1.0))
    await service.put_team(TeamIn(id="t", org="o", models=["chat"]))
    await service.put_team(TeamIn(id="u", org="o"))
    in_t = (await service.create_key(KeyIn(team="t"))).id
    in_u = (await service.create_key(KeyIn(team="u"))).id
    assert not directory.principals[in_t].revoked
    async with db.transaction() as tx:  # what the old DELETE did: the team row only
        version = int((await tx.fetch(sql.BUMP_REVISION))[0][0])
        await tx.execute(sql.DELETE_TEAM, version, "t")
    await directory.refresh()
    assert directory.principals[in_t].revoked and service.key(in_t).revoked
    assert not directory.principals[in_u].revoked
    async with db.transaction() as tx:
        version = int((await tx.fetch(sql.BUMP_REVISION))[0][0])
        await tx.execute(sql.DELETE_ORG, version, "o")
    await directory.refresh()
    assert directory.principals[in_u].revoked  # its team's organisation is gone
    await db.close()
