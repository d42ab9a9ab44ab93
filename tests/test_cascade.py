"""'cascade' groups through a real gateway and simulated upstreams: the cheap step's answer is
kept when every judge passes it and escalated otherwise; the route header and the ledger tell
each step's verdict; the ledger's cost is the sum of every call the cascade paid for; a stream
gets the final answer only."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from openai.types.chat import ChatCompletion

from polyroute.autorouter import judges
from polyroute.config import ConfigError, load_config
from polyroute.sim.settings import DEFAULT_TEXT
from polyroute.sim.tokens import count_tokens
from tests.conftest import SIM_KEY, sim_provider
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

CHEAP_PRICE = {"input_per_1m": 0.5, "output_per_1m": 1.5}
STRONG_PRICE = {"input_per_1m": 10.0, "output_per_1m": 30.0}
VERIFIER_PRICE = {"input_per_1m": 1.0, "output_per_1m": 2.0}
CHEAP = {"provider": "sim", "model": "echo-cheap", "name": "cheap", "price": CHEAP_PRICE}
STRONG = {"provider": "sim", "model": "strong-model", "name": "strong", "price": STRONG_PRICE}
SURE = "Say hello."  # the simulator is sure of every token but '?'
UNSURE = "Why? Is it? Really?"


def cascade(*judges: dict[str, Any]) -> dict[str, Any]:
    return {"routing": "cascade", "cascade": {"judges": list(judges)},
            "deployments": [CHEAP, STRONG]}


@pytest.fixture(scope="module")
def gw(sim: SimServer) -> Iterator[GatewayProcess]:
    with SimServer(api_key=SIM_KEY, text="Yes.") as yes_sim:
        config = {
            "providers": {"sim": sim_provider(sim), "yes": sim_provider(yes_sim)},
            "model_groups": {
                "lp": cascade({"kind": "logprobs", "threshold": 0.8}),
                "json": cascade({"kind": "json"}),
                "regex": cascade({"kind": "regex", "patterns": {"digits": "^[0-9 ]+$"}}),
                "agree": cascade({"kind": "agreement"}),
                "verify-no": cascade({"kind": "verifier", "verifier": "echo-judge"}),
                "verify-yes": cascade({"kind": "verifier", "verifier": "yes-judge"}),
                "echo-judge": {"deployments": [{"provider": "sim", "model": "echo-judge",
                                                "name": "echo-judge",
                                                "price": VERIFIER_PRICE}]},
                "yes-judge": {"deployments": [{"provider": "yes", "model": "judge", "name": "judge",
                                               "price": VERIFIER_PRICE}]},
                "down-first": {"routing": "cascade",
                               "cascade": {"judges": [{"kind": "logprobs"}]},
                               "deployments": [{**CHEAP, "model": "echo-cheap@unavailable",
                                                "name": "cheap-down"}, STRONG]},
                "down-last": {"routing": "cascade",
                              "cascade": {"judges": [{"kind": "logprobs"}]},
                              "deployments": [CHEAP, {**STRONG, "model": "strong@unavailable",
                                                      "name": "strong-down"}]},
            },
            "storage": {"flush_interval_s": 0.05},
        }
        with GatewayProcess(config, env={"SIM_KEY": SIM_KEY}) as gateway:
            yield gateway


def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


def ask(gw: GatewayProcess, model: str, prompt: str, rid: str, **extra: Any) -> Any:
    return client(gw).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": prompt}],
        extra_headers={"x-request-id": rid}, **extra)


def ledger_row(gw: GatewayProcess, rid: str) -> tuple[Any, ...]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with sqlite3.connect(gw.db_path) as conn:
            row = conn.execute(
                "SELECT deployment, route, prompt_tokens, completion_tokens, cost_usd, stream "
                "FROM ledger WHERE client_request_id = ?", (rid,)).fetchone()
        if row is not None:
            return tuple(row)
        time.sleep(0.05)
    raise AssertionError(f"no ledger row for {rid}")


def usd(price: dict[str, float], prompt: int, output: int) -> float:
    return (prompt * price["input_per_1m"] + output * price["output_per_1m"]) / 1e6


def test_a_sure_answer_is_kept_and_costs_one_call(gw: GatewayProcess) -> None:
    reply = ask(gw, "lp", SURE, "lp-sure")
    assert reply.headers["x-polyroute-deployment"] == "cheap"
    route = reply.headers["x-polyroute-route"]
    assert route.startswith("cascade cheap:accept(logprobs=0.9")
    answer = reply.parse()
    assert answer.choices[0].message.content == SURE
    assert answer.choices[0].logprobs is None  # the judge asked for them, not the client
    deployment, logged_route, prompt, output, cost, _ = ledger_row(gw, "lp-sure")
    assert (deployment, logged_route) == ("cheap", route)
    tokens = count_tokens(SURE)
    assert (prompt, output) == (tokens, tokens)
    assert cost == pytest.approx(usd(CHEAP_PRICE, tokens, tokens))


def test_an_unsure_answer_escalates_and_both_calls_are_billed(gw: GatewayProcess) -> None:
    reply = ask(gw, "lp", UNSURE, "lp-unsure")
    assert reply.headers["x-polyroute-deployment"] == "strong"
    assert reply.headers["x-polyroute-attempts"] == "cheap:ok,strong:ok"
    route = reply.headers["x-polyroute-route"]
    assert route.startswith("cascade cheap:escalate(logprobs=0.")
    assert route.endswith("strong:final")
    assert reply.parse().choices[0].message.content == DEFAULT_TEXT
    _, logged_route, prompt, output, cost, _ = ledger_row(gw, "lp-unsure")
    assert logged_route == route
    asked, echoed, strong_out = (count_tokens(UNSURE), count_tokens(UNSURE),
                                 count_tokens(DEFAULT_TEXT))
    assert (prompt, output) == (2 * asked, echoed + strong_out)
    assert cost == pytest.approx(usd(CHEAP_PRICE, asked, echoed)
                                 + usd(STRONG_PRICE, asked, strong_out))


def test_the_client_still_gets_logprobs_it_asked_for(gw: GatewayProcess) -> None:
    reply = ask(gw, "lp", SURE, "lp-client-logprobs", logprobs=True)
    answer = reply.parse()
    assert answer.choices[0].logprobs is not None
    tokens = answer.choices[0].logprobs.content
    assert tokens and "".join(t.token for t in tokens) == SURE


def test_a_stream_gets_the_final_answer_only(gw: GatewayProcess) -> None:
    with client(gw).chat.completions.with_streaming_response.create(
            model="lp", messages=[{"role": "user", "content": UNSURE}], stream=True,
            extra_headers={"x-request-id": "lp-stream"}) as response:
        route = response.headers["x-polyroute-route"]
        text = "".join(chunk.choices[0].delta.content or ""
                       for chunk in response.parse() if chunk.choices)
    assert text == DEFAULT_TEXT
    assert "cheap:escalate" in route and route.endswith("strong:final")
    deployment, _, _, _, cost, stream = ledger_row(gw, "lp-stream")
    assert (deployment, stream) == ("strong", 1)
    assert cost > usd(STRONG_PRICE, count_tokens(UNSURE), count_tokens(DEFAULT_TEXT))


def test_structural_judges(gw: GatewayProcess) -> None:
    assert ask(gw, "json", '{"ok": [1, 2]}', "json-ok").headers[
        "x-polyroute-deployment"] == "cheap"
    bad = ask(gw, "json", "{ok: 1", "json-bad")
    assert bad.headers["x-polyroute-deployment"] == "strong"
    assert "cheap:escalate(json=invalid)" in bad.headers["x-polyroute-route"]
    digits = {"metadata": {"polyroute_check": "digits"}}
    assert ask(gw, "regex", "12 34", "re-ok", extra_body=digits).headers[
        "x-polyroute-deployment"] == "cheap"
    assert ask(gw, "regex", "twelve", "re-bad", extra_body=digits).headers[
        "x-polyroute-deployment"] == "strong"
    assert ask(gw, "regex", "twelve", "re-none").headers["x-polyroute-deployment"] == "cheap"
    with pytest.raises(openai.BadRequestError) as info:
        ask(gw, "regex", "12", "re-unknown",
            extra_body={"metadata": {"polyroute_check": "emails"}})
    assert info.value.body["param"] == "metadata.polyroute_check"  # type: ignore[index]


def test_agreement_pays_for_the_second_sample(gw: GatewayProcess) -> None:
    reply = ask(gw, "agree", SURE, "agree")
    assert reply.headers["x-polyroute-deployment"] == "cheap"
    assert "agreement=1.000" in reply.headers["x-polyroute-route"]
    assert reply.headers["x-polyroute-attempts"] == "cheap:ok,cheap:ok"
    _, _, prompt, output, cost, _ = ledger_row(gw, "agree")
    tokens = count_tokens(SURE)
    assert (prompt, output) == (2 * tokens, 2 * tokens)
    assert cost == pytest.approx(2 * usd(CHEAP_PRICE, tokens, tokens))


def test_a_verifier_decides(gw: GatewayProcess) -> None:
    yes = ask(gw, "verify-yes", SURE, "verify-yes")
    assert yes.headers["x-polyroute-deployment"] == "cheap"
    assert "verifier=yes" in yes.headers["x-polyroute-route"]
    assert yes.headers["x-polyroute-attempts"] == "cheap:ok,judge:ok"
    no = ask(gw, "verify-no", SURE, "verify-no")  # an echoing verifier never says yes
    assert no.headers["x-polyroute-deployment"] == "strong"
    assert no.headers["x-polyroute-attempts"] == "cheap:ok,echo-judge:ok,strong:ok"
    _, _, _, _, cost, _ = ledger_row(gw, "verify-yes")
    tokens = count_tokens(SURE)
    assert cost > usd(CHEAP_PRICE, tokens, tokens)  # the verifier's question is billed too


def test_a_failing_step_escalates_and_a_failing_last_step_still_bills_the_first(
        gw: GatewayProcess) -> None:
    reply = ask(gw, "down-first", SURE, "down-first")
    assert reply.headers["x-polyroute-deployment"] == "strong"
    assert reply.headers["x-polyroute-route"] == "cascade cheap-down:failed strong:final"
    with pytest.raises(openai.APIStatusError) as info:
        ask(gw, "down-last", UNSURE, "down-last")
    assert info.value.status_code >= 500
    _, _, prompt, output, cost, _ = ledger_row(gw, "down-last")
    tokens = count_tokens(UNSURE)
    assert (prompt, output) == (tokens, tokens)  # the cheap step answered and is billed
    assert cost == pytest.approx(usd(CHEAP_PRICE, tokens, tokens))


def test_simulated_logprobs_are_openai_shaped(sim: SimServer) -> None:
    """The simulator's logprobs parse as the openai SDK's own types, and the judge reads
    the same numbers from the raw body."""
    raw = openai.OpenAI(base_url=sim.base_url, api_key=SIM_KEY, max_retries=0) \
        .chat.completions.with_raw_response.create(
            model="echo", messages=[{"role": "user", "content": UNSURE}], logprobs=True,
            top_logprobs=2)
    body = raw.http_response.content
    parsed = ChatCompletion.model_validate(json.loads(body))
    content = parsed.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None and all(len(t.top_logprobs) == 2 for t in content)
    assert {t.logprob for t in content if "?" in t.token} == {-2.5}
    confidence = judges.token_confidence(body)
    assert confidence is not None and 0.3 < confidence < 0.8


def test_judges_read_text_honestly() -> None:
    assert judges.agreement("The answer is B.", "the answer is b") == 1.0
    assert judges.agreement("B", "C") == 0.0
    assert 0 < judges.agreement("it is 42 apples", "it is 41 apples") < 1
    assert judges.is_json('```json\n{"a": 1}\n```') and not judges.is_json("{a: 1}")
    assert judges.verifier_says_yes("Yes.") and not judges.verifier_says_yes("No, yes.")
    assert judges.token_confidence(b'{"choices": [{"logprobs": null}]}') is None


def test_config_errors(tmp_path: Path) -> None:
    def check(group: dict[str, Any]) -> str:
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({
            "providers": {"sim": {"base_url": "http://127.0.0.1:9/v1", "auth": "none"}},
            "model_groups": {"g": group}}))
        with pytest.raises(ConfigError) as info:
            load_config(str(path), {})
        return str(info.value)

    two = [{"provider": "sim", "model": "a"}, {"provider": "sim", "model": "b"}]
    assert "model_groups.g.cascade" in check({"routing": "cascade", "deployments": two})
    assert "two steps" in check({"routing": "cascade", "deployments": two[:1],
                                 "cascade": {"judges": [{"kind": "json"}]}})
    assert "verifier" in check({"routing": "cascade", "deployments": two,
                                "cascade": {"judges": [{"kind": "verifier",
                                                        "verifier": "nope"}]}})
    assert "patterns.p" in check({"routing": "cascade", "deployments": two,
                                  "cascade": {"judges": [{"kind": "regex",
                                                          "patterns": {"p": "("}}]}})
    assert "routing is not cascade" in check({"deployments": two,
                                              "cascade": {"judges": [{"kind": "json"}]}})


def test_a_budget_reserves_for_every_step(sim: SimServer) -> None:
    """A key whose budget covers one call to the strong model, but not the cascade's worst
    case (both steps at the dearest price), may use the strong model alone, not the
    cascade."""
    from tests.support.policy import MASTER_KEY, new_key

    config = {
        "providers": {"sim": sim_provider(sim)},
        "model_groups": {"lp": cascade({"kind": "logprobs"}),
                         "strong": {"deployments": [STRONG]}},
        "auth": {"master_key": "${PR_MASTER}"},
        "storage": {"flush_interval_s": 0.05},
    }
    with GatewayProcess(config, env={"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}) as gw:
        one_call = usd(STRONG_PRICE, 10, 1000)
        key = new_key(gw, total_budget_usd=round(1.5 * one_call, 6))
        keyed = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
        message = [{"role": "user", "content": SURE}]
        keyed.chat.completions.create(model="strong", messages=message,  # type: ignore[arg-type]
                                      max_tokens=1000)
        with pytest.raises(openai.RateLimitError) as info:
            keyed.chat.completions.create(model="lp", messages=message,  # type: ignore[arg-type]
                                          max_tokens=1000)
        assert "budget" in str(info.value).lower()


def test_an_anthropic_client_streams_from_an_anthropic_cascade() -> None:
    """The client's own body says "stream": each step is still asked for a whole answer
    (passed through natively, without the field), and the client gets the final answer as
    Anthropic's stream events."""
    import anthropic

    with SimServer(api_key=SIM_KEY) as ant:
        provider = {"protocol": "anthropic", "base_url": ant.root_url, "api_key": "${SIM_KEY}",
                    "any_model": True}
        config = {
            "providers": {"ant": provider},
            "model_groups": {"c": {
                "routing": "cascade", "cascade": {"judges": [{"kind": "json"}]},
                "deployments": [{"provider": "ant", "model": "claude-echo", "name": "small"},
                                {"provider": "ant", "model": "claude-big", "name": "big"}]}},
            "storage": {"flush_interval_s": 0.05},
        }
        with GatewayProcess(config, env={"SIM_KEY": SIM_KEY}) as gw:
            client = anthropic.Anthropic(base_url=gw.root_url, api_key="unused",
                                         max_retries=0)
            with client.messages.stream(model="c", max_tokens=64, messages=[
                    {"role": "user", "content": "not json"}]) as stream:
                text = "".join(stream.text_stream)
                final = stream.get_final_message()
            assert text and final.content[0].type == "text"  # type: ignore[union-attr]
            assert [a.split(":")[0] for a in gw_attempts(gw)] == ["small", "big"]


def gw_attempts(gw: GatewayProcess) -> list[str]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with sqlite3.connect(gw.db_path) as conn:
            row = conn.execute("SELECT attempts, route FROM ledger").fetchone()
        if row is not None:
            assert "small:escalate(json=invalid)" in row[1]
            return [f"{a[0]}:{a[2]}" for a in json.loads(row[0])]
        time.sleep(0.05)
    raise AssertionError("no ledger row")


def test_a_governed_callers_prompt_never_reaches_the_verifier(sim: SimServer) -> None:
    """Its policy vetted the steps, not the verifier group's deployments: the verifier judge
    escalates instead of asking."""
    from tests.support.policy import MASTER_KEY, new_key

    config = {
        "providers": {"sim": sim_provider(sim)},
        "model_groups": {
            "v": cascade({"kind": "verifier", "verifier": "judge"}),
            "judge": {"deployments": [{"provider": "sim", "model": "echo-judge",
                                       "name": "echo-judge", "price": VERIFIER_PRICE}]}},
        "auth": {"master_key": "${PR_MASTER}"},
        "storage": {"flush_interval_s": 0.05},
    }
    with GatewayProcess(config, env={"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}) as gw:
        routes = {}
        for name, settings in (("plain", {}), ("governed", {"governance": {
                "deny_terms": ["project-x"]}})):
            key = new_key(gw, **settings)
            reply = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) \
                .chat.completions.with_raw_response.create(
                    model="v", messages=[{"role": "user", "content": SURE}])
            routes[name] = (reply.headers["x-polyroute-route"],
                            reply.headers["x-polyroute-attempts"])
        assert routes["plain"] == ("cascade cheap:escalate(verifier=no) strong:final",
                                   "cheap:ok,echo-judge:ok,strong:ok")
        assert routes["governed"] == ("cascade cheap:escalate(verifier=governed) strong:final",
                                      "cheap:ok,strong:ok")
