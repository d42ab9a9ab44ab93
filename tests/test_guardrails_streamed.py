"""Answer guardrails (issue 11, item 2), per scope, on whole and streamed answers, through the
official SDKs of the three vendors (openai: Chat Completions and Responses; anthropic;
google-genai): a webhook checking a stream window by window or holding it until it is
checked, and a policy's ``answer_data_classes`` redacting or refusing personal data the model
wrote on its own — set on a key, a team and an organisation. A refused stream never reads
as a complete answer: it is a 403 before anything was sent, or the dialect's error event
after what was checked."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, admin, ok
from tests.support.sim import SimServer
from tests.support.webhook import Webhook

KEY = "sk-guardrail-stream-upstream-52"
EMAIL = "jane.doe@example.org"
CARD = "4111 1111 1111 1111"
LEAK = f"Sure. Write to {EMAIL} and pay with card {CARD}; that is all I know."
DIALECTS = ["chat", "messages", "gemini", "responses"]
SDK_ERRORS = (openai.APIError, anthropic.APIError, genai_errors.APIError)


@pytest.fixture(scope="module")
def hook() -> Iterator[Webhook]:
    webhook = Webhook()
    yield webhook
    webhook.server.shutdown()


@pytest.fixture(scope="module")
def sims() -> Iterator[tuple[SimServer, SimServer]]:
    """An echo model (paced, so that a stream comes in several reads), and a model whose
    every answer holds an e-mail address and a card."""
    with SimServer(api_key=KEY, tokens_per_second=100) as echo, \
            SimServer(api_key=KEY, text=LEAK) as leaky:
        yield echo, leaky


@pytest.fixture(scope="module")
def gw(sims: tuple[SimServer, SimServer], hook: Webhook) -> Iterator[GatewayProcess]:
    echo, leaky = sims
    config = {
        "providers": {"echo": {"base_url": echo.base_url, "api_key": "${KEY}"},
                      "echo-ant": {"protocol": "anthropic", "base_url": echo.root_url,
                                   "api_key": "${KEY}"},
                      "leaky": {"base_url": leaky.base_url, "api_key": "${KEY}"},
                      "leaky-ant": {"protocol": "anthropic", "base_url": leaky.root_url,
                                    "api_key": "${KEY}"}},
        "model_groups": {
            "echo": {"deployments": [{"provider": "echo", "model": "echo"}]},
            "echo-ant": {"deployments": [{"provider": "echo-ant", "model": "echo"}]},
            "leaky": {"deployments": [{"provider": "leaky", "model": "gpt-4o-mini"}]},
            "leaky-ant": {"deployments": [{"provider": "leaky-ant", "model": "gpt-4o-mini"}]},
        },
        "guardrails": {
            "moderate-hold": {"url": f"{hook.url}/closed", "stages": ["response"],
                              "stream": "hold", "scoped": True},
            "moderate-inc": {"url": f"{hook.url}/closed", "stages": ["response"],
                             "stream": "incremental", "window_chars": 16, "scoped": True},
            "no-secrets-in": {"type": "detectors", "classes": ["secrets"], "scoped": True},
            "no-falcon-out": {"type": "deny_terms", "terms": ["Project Falcon"],
                              "stages": ["response"], "window_chars": 16, "scoped": True},
        },
        "auth": {"master_key": "${PR_MASTER}", "refresh_s": 0.2},
        "storage": {"flush_interval_s": 0.1},
    }
    with GatewayProcess(config, {"KEY": KEY, "PR_MASTER": MASTER_KEY}) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def keys(gw: GatewayProcess) -> dict[str, str]:
    """One key per scope a policy can sit on."""
    ok(admin(gw, "POST", "/admin/orgs", {"id": "strict-org", "governance": {
        "answer_data_classes": {"pii": "refuse"}}}))
    ok(admin(gw, "POST", "/admin/teams", {"id": "redacting-team", "governance": {
        "answer_data_classes": {"pii": "redact"}}}))
    ok(admin(gw, "POST", "/admin/teams", {"id": "strict-team", "org": "strict-org"}))

    def key(**settings: Any) -> str:
        return str(ok(admin(gw, "POST", "/admin/keys", settings))["key"])

    return {"hold": key(governance={"guardrails": ["moderate-hold"]}),
            "inc": key(governance={"guardrails": ["moderate-inc"]}),
            "redact": key(team="redacting-team"),
            "refuse": key(team="strict-team"),
            "plain": key(),
            "builtin": key(governance={"guardrails": ["no-secrets-in", "no-falcon-out"]})}


@functools.cache
def _gemini(root_url: str, key: str) -> genai.Client:
    """One client per key: building one costs more than a request here."""
    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=root_url, api_version="v1beta", timeout=15_000,
        retry_options=types.HttpRetryOptions(attempts=1)))


def run(gw: GatewayProcess, dialect: str, key: str, model: str, text: str,
        stream: bool) -> tuple[str, Exception | None]:
    """The answer's text the client received, and the error its SDK raised (if any)."""
    got: list[str] = []
    try:
        if dialect == "messages":
            ant = anthropic.Anthropic(base_url=gw.root_url, api_key=key, max_retries=0)
            msgs: Any = [{"role": "user", "content": text}]
            if stream:
                with ant.messages.stream(model=model, max_tokens=300, messages=msgs) as s:
                    for piece in s.text_stream:
                        got.append(piece)
            else:
                reply = ant.messages.create(model=model, max_tokens=300, messages=msgs)
                got.extend(b.text for b in reply.content if b.type == "text")
        elif dialect == "gemini":
            client = _gemini(gw.root_url, key)
            if stream:
                for chunk in client.models.generate_content_stream(model=model, contents=text):
                    got.append(chunk.text or "")
            else:
                got.append(client.models.generate_content(model=model, contents=text).text
                           or "")
        elif dialect == "responses":
            oai = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
            if stream:
                for e in oai.responses.create(model=model, input=text, stream=True):
                    if e.type == "response.output_text.delta":
                        got.append(e.delta)
            else:
                got.append(oai.responses.create(model=model, input=text).output_text)
        else:
            oai = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
            messages: Any = [{"role": "user", "content": text}]
            if stream:
                for c in oai.chat.completions.create(model=model, stream=True,
                                                     messages=messages):
                    if c.choices:
                        got.append(c.choices[0].delta.content or "")
            else:
                reply = oai.chat.completions.create(model=model, messages=messages)
                got.append(reply.choices[0].message.content or "")
    except SDK_ERRORS as exc:
        return "".join(got), exc
    return "".join(got), None


def status(exc: Exception | None) -> int | None:
    code = getattr(exc, "status_code", None) or getattr(exc, "code", None)
    return code if isinstance(code, int) else None


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_held_check_refuses_before_anything_is_sent(
        gw: GatewayProcess, keys: dict[str, str], hook: Webhook, dialect: str,
        stream: bool) -> None:
    model = "echo-ant" if dialect == "messages" else "echo"  # messages: same-dialect bytes
    assert run(gw, dialect, keys["hold"], model, "a fine answer", stream) == (
        "a fine answer", None)
    text, exc = run(gw, dialect, keys["hold"], model, "say answer-bad now", stream)
    assert text == "" and status(exc) == 403  # a plain HTTP refusal: nothing was released
    assert "guardrail 'moderate-hold' (response)" in str(exc)
    asked = [b for p, b in hook.seen if b["stage"] == "response"]
    assert asked[-1]["text"] == "say answer-bad now"  # the whole answer, checked once


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_incremental_check_ends_the_stream_with_an_error_event(
        gw: GatewayProcess, keys: dict[str, str], hook: Webhook, dialect: str) -> None:
    model = "echo-ant" if dialect == "messages" else "echo"
    fine = "one two three four five six seven eight nine ten eleven twelve"
    assert run(gw, dialect, keys["inc"], model, fine, True) == (fine, None)
    windows = [b["text"] for p, b in hook.seen if b["stage"] == "response"][-8:]
    assert len(windows) > 2  # checked window by window, not whole
    prompt = "one two three four five six seven eight answer-bad nine ten"
    text, exc = run(gw, dialect, keys["inc"], model, prompt, True)
    assert exc is not None, "a refused stream must not read as a complete answer"
    assert text and prompt.startswith(text) and "answer-bad" not in text  # only what passed
    assert "moderate-inc" in str(exc)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_personal_data_in_answers_is_redacted_or_refused_per_scope(
        gw: GatewayProcess, keys: dict[str, str], dialect: str, stream: bool) -> None:
    model = "leaky-ant" if dialect == "messages" else "leaky"
    # a key without policies gets what the model wrote
    assert run(gw, dialect, keys["plain"], model, "hello", stream) == (LEAK, None)
    # the team's policy redacts it: placeholders, nowhere the values
    text, exc = run(gw, dialect, keys["redact"], model, "hello", stream)
    assert exc is None and EMAIL not in text and CARD not in text
    assert text == LEAK.replace(EMAIL, "[EMAIL_1]").replace(CARD, "[CARD_1]")
    # the organisation's policy refuses it, before anything is sent
    text, exc = run(gw, dialect, keys["refuse"], model, "hello", stream)
    assert text == "" and status(exc) == 403
    assert "the answer holds card, email" in str(exc) and "o:strict-org" in str(exc)


def test_a_refused_answer_is_billed_at_its_cost(gw: GatewayProcess, keys: dict[str, str],
                                               sims: tuple[SimServer, SimServer]) -> None:
    _, leaky = sims
    before = leaky.stats()["requests_total"]
    for stream in (False, True):
        _, exc = run(gw, "chat", keys["refuse"], "leaky", "hello", stream)
        assert isinstance(exc, openai.APIStatusError)
        request_id = exc.response.headers["x-request-id"]
        deadline = time.monotonic() + 20
        while not (rows := ok(admin(gw, "GET", f"/admin/ledger/{request_id}"))["data"]):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.3)  # a second record, were there one, would be flushed by now
        rows = ok(admin(gw, "GET", f"/admin/ledger/{request_id}"))["data"]
        assert len(rows) == 1  # settled once
        row = rows[0]
        assert row["status"] == 403 and "answer_data_classes" in row["governance"]
        assert row["cost_usd"] and row["cost_usd"] > 0  # the upstream answered: real cost
    assert leaky.stats()["requests_total"] == before + 2


def test_a_policy_naming_an_unknown_guardrail_is_refused_when_written(
        gw: GatewayProcess, keys: dict[str, str]) -> None:
    """Refused by the admin API with a 400 naming it (a reload that drops a guardrail a
    policy names makes that scope's requests fail closed: tests/test_guardrails_gaps.py)."""
    made = ok(admin(gw, "POST", "/admin/teams", {"id": "named-team"}))
    for method, path, body in (
            ("POST", "/admin/keys", {"governance": {"guardrails": ["no-such-guardrail"]}}),
            ("PATCH", f"/admin/teams/{made['id']}",
             {"governance": {"guardrails": ["no-falcon-out", "no-such-guardrail"]}}),
            ("POST", "/admin/orgs", {"id": "o-unknown",
                                     "governance": {"guardrails": ["no-such-guardrail"]}})):
        code, answer = admin(gw, method, path, body)
        assert code == 400, answer
        error = answer["error"]
        assert "'no-such-guardrail'" in error["message"] and "no-falcon-out" in error["message"]
        assert error["param"] == "governance.guardrails"
    assert "governance" not in ok(admin(gw, "GET", f"/admin/teams/{made['id']}"))
    assert admin(gw, "GET", "/admin/orgs/o-unknown")[0] == 404


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_built_in_guardrails_of_the_config_named_by_a_policy(
        gw: GatewayProcess, keys: dict[str, str], sims: tuple[SimServer, SimServer],
        dialect: str, stream: bool) -> None:
    echo, _ = sims
    model = "echo-ant" if dialect == "messages" else "echo"
    before = echo.stats()["requests_total"]
    text, exc = run(gw, dialect, keys["builtin"], model, "my key is AKIAIOSFODNN7EXAMPLE",
                    stream)
    assert text == "" and status(exc) == 403 and "'no-secrets-in' (request)" in str(exc)
    assert echo.stats()["requests_total"] == before  # never sent
    text, exc = run(gw, dialect, keys["builtin"], model,
                    "what is new on project falcon this week", stream)
    assert exc is not None and "'no-falcon-out' (response)" in str(exc)
    assert "falcon" not in text  # whatever was released had passed the check
    assert echo.stats()["requests_total"] == before + 1
    # a key whose policy does not name them is not checked by them
    assert run(gw, dialect, keys["plain"], model, "my key is AKIAIOSFODNN7EXAMPLE",
               stream) == ("my key is AKIAIOSFODNN7EXAMPLE", None)
