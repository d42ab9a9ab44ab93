"""Data-governance policies (issue 11, item 1) through the vendors' own SDKs (openai,
anthropic, google-genai), in every chat dialect the gateway serves, streamed and not, against
simulators that record what they received: a policy refuses (naming its rule, in the
client's error shape), reroutes, or redacts — and the upstream never sees a refused request
or a redacted value, while the client gets its values back in the answer."""

from __future__ import annotations

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

KEY = "sk-governance-upstream-77"
EMAIL = "jane.doe@example.org"
CARD = "4111 1111 1111 1111"
PROMPT = f"Write to {EMAIL} about card {CARD}, please."
DIALECTS = ["chat", "messages", "responses", "gemini"]


@pytest.fixture(scope="module")
def sims() -> Iterator[tuple[SimServer, SimServer]]:
    with SimServer(api_key=KEY) as eu, SimServer(api_key=KEY) as us:
        yield eu, us


@pytest.fixture(scope="module")
def gw(sims: tuple[SimServer, SimServer]) -> Iterator[GatewayProcess]:
    eu, us = sims
    config = {
        "providers": {"eu": {"base_url": eu.base_url, "api_key": "${KEY}"},
                      "us": {"protocol": "anthropic", "base_url": us.root_url,
                             "api_key": "${KEY}"}},
        "model_groups": {
            # both: the US deployment first, the EU one (cleared for personal data) second
            "both": {"routing": "priority", "deployments": [
                {"provider": "us", "model": "echo", "priority": 0,
                 "tags": {"region": "us", "cloud": "aws"}},
                {"provider": "eu", "model": "echo", "priority": 1,
                 "tags": {"region": "eu", "cloud": "azure", "pii-ok": "true"}}]},
            "us-only": {"deployments": [{"provider": "us", "model": "echo",
                                         "tags": {"region": "us"}}]},
        },
        "auth": {"master_key": "${PR_MASTER}", "refresh_s": 0.2},
        "storage": {"flush_interval_s": 0.1},
    }
    with GatewayProcess(config, {"KEY": KEY, "PR_MASTER": MASTER_KEY}) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def keys(gw: GatewayProcess) -> dict[str, str]:
    ok(admin(gw, "POST", "/admin/teams", {"id": "eu-health", "governance": {
        "regions": ["eu"], "deny_vendors": ["us"]}}))
    made = {}
    made["eu"] = ok(admin(gw, "POST", "/admin/keys", {"team": "eu-health"}))["key"]
    made["refuse"] = ok(admin(gw, "POST", "/admin/keys", {"governance": {"data_classes": {
        "pii": {"allow_tags": ["pii-ok"], "otherwise": "refuse"}}}}))["key"]
    made["redact"] = ok(admin(gw, "POST", "/admin/keys", {"governance": {"data_classes": {
        "pii": {"allow_tags": ["pii-ok"], "otherwise": "redact"}}}}))["key"]
    made["plain"] = ok(admin(gw, "POST", "/admin/keys", {}))["key"]
    made["guarded"] = ok(admin(gw, "POST", "/admin/keys", {"governance": {
        "deny_terms": ["Project Falcon"], "max_prompt_chars": 40}}))["key"]
    return made


def ask(gw: GatewayProcess, dialect: str, key: str, model: str, text: str,
        stream: bool) -> str:
    """The answer's text, through the dialect's official SDK."""
    if dialect == "gemini":
        client = genai.Client(api_key=key, http_options=types.HttpOptions(
            base_url=gw.root_url, api_version="v1beta", timeout=15_000,
            retry_options=types.HttpRetryOptions(attempts=1)))
        if stream:
            return "".join(c.text or "" for c in
                           client.models.generate_content_stream(model=model, contents=text))
        return client.models.generate_content(model=model, contents=text).text or ""
    if dialect == "messages":
        ant = anthropic.Anthropic(base_url=gw.root_url, api_key=key, max_retries=0)
        msgs: Any = [{"role": "user", "content": text}]
        if stream:
            with ant.messages.stream(model=model, max_tokens=300, messages=msgs) as s:
                return "".join(s.text_stream)
        reply = ant.messages.create(model=model, max_tokens=300, messages=msgs)
        return "".join(b.text for b in reply.content if b.type == "text")
    oai = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    if dialect == "responses":
        if stream:
            events = oai.responses.create(model=model, input=text, stream=True)
            return "".join(e.delta for e in events if e.type == "response.output_text.delta")
        return oai.responses.create(model=model, input=text).output_text
    if stream:
        chunks = oai.chat.completions.create(model=model, stream=True, messages=[
            {"role": "user", "content": text}])
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reply = oai.chat.completions.create(model=model, messages=[
        {"role": "user", "content": text}])
    return reply.choices[0].message.content or ""


def refused(gw: GatewayProcess, dialect: str, key: str, model: str, text: str,
            stream: bool) -> str:
    """The refusal's message; the SDK raised its permission error."""
    if dialect == "gemini":  # Google's shape: {"error": {"code", "status", "message"}}
        with pytest.raises(genai_errors.ClientError) as google:
            ask(gw, dialect, key, model, text, stream)
        assert google.value.code == 403 and google.value.status == "PERMISSION_DENIED"
        return str(google.value.message)
    error: type[Exception] = (anthropic.PermissionDeniedError if dialect == "messages"
                              else openai.PermissionDeniedError)
    with pytest.raises(error) as info:
        ask(gw, dialect, key, model, text, stream)
    exc: Any = info.value
    assert exc.status_code == 403
    body = exc.body
    if dialect == "messages":  # Anthropic's shape: {"type": "error", "error": {...}}
        assert body["type"] == "error" and body["error"]["type"] == "permission_error"
        return str(body["error"]["message"])
    assert body["code"] == "policy_violation"  # OpenAI's SDK hands over the inner object
    return str(body["message"])


def received(sim: SimServer) -> tuple[int, str]:
    stats = sim.stats()
    return stats["requests_total"], str(stats["last_request"])


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_region_policy_routes_past_and_refuses(
        gw: GatewayProcess, sims: tuple[SimServer, SimServer], keys: dict[str, str],
        dialect: str, stream: bool) -> None:
    _eu, us = sims
    before_us = received(us)[0]
    # the team may only use the EU: the US deployment listed first is skipped
    assert ask(gw, dialect, keys["eu"], "both", "hello there", stream) == "hello there"
    assert received(us)[0] == before_us
    # a group with only a US deployment: refused, naming the scope and the rule
    message = refused(gw, dialect, keys["eu"], "us-only", "hello", stream)
    assert "team 'eu-health'" in message and "vendor 'us' is in deny_vendors" in message
    assert received(us)[0] == before_us  # the upstream never saw it


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_personal_data_is_routed_refused_or_redacted(
        gw: GatewayProcess, sims: tuple[SimServer, SimServer], keys: dict[str, str],
        dialect: str, stream: bool) -> None:
    eu, us = sims
    # refuse: to the pii-ok deployment when the group has one …
    eu_before, us_before = received(eu)[0], received(us)[0]
    assert ask(gw, dialect, keys["refuse"], "both", PROMPT, stream) == PROMPT
    assert received(eu)[0] == eu_before + 1 and received(us)[0] == us_before
    # … else refused by name; no personal data, no refusal
    message = refused(gw, dialect, keys["refuse"], "us-only", PROMPT, stream)
    assert "data_classes.pii" in message and "card, email" in message
    assert "pii-ok" in message and received(us)[0] == us_before
    assert ask(gw, dialect, keys["refuse"], "us-only", "nothing personal", stream) == \
        "nothing personal"
    # redact: the US upstream gets placeholders, the client its values back
    answer = ask(gw, dialect, keys["redact"], "us-only", PROMPT, stream)
    _count, seen = received(us)
    assert EMAIL not in seen and CARD not in seen and "[EMAIL_1]" in seen and "[CARD_1]" in seen
    assert answer == PROMPT
    # a key without a policy sends what it was given
    assert ask(gw, dialect, keys["plain"], "us-only", PROMPT, stream) == PROMPT
    assert EMAIL in received(us)[1]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_deny_list_and_size_limit_refuse_before_the_upstream(
        gw: GatewayProcess, sims: tuple[SimServer, SimServer], keys: dict[str, str],
        dialect: str, stream: bool) -> None:
    _eu, us = sims
    before = received(us)[0]
    message = refused(gw, dialect, keys["guarded"], "us-only", "news on project FALCON?",
                      stream)
    assert "rule deny_terms" in message and "Project Falcon" in message
    message = refused(gw, dialect, keys["guarded"], "us-only", "x" * 41, stream)
    assert "rule max_prompt_chars" in message and "41 characters" in message
    assert received(us)[0] == before
    assert ask(gw, dialect, keys["guarded"], "us-only", "x" * 40, stream) == "x" * 40


def test_refusals_are_in_the_ledger_and_the_audit_log(
        gw: GatewayProcess, keys: dict[str, str]) -> None:
    refused(gw, "chat", keys["refuse"], "us-only", PROMPT, False)
    deadline = time.monotonic() + 30
    while True:  # refusals reach the log in batches
        entries = [e for e in ok(admin(gw, "GET", "/admin/audit?outcome=refused"))["data"]
                   if "data_classes.pii" in e["detail"].get("rule", "")]
        if entries or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert entries and entries[0]["action"] == "request policy_violation"
    assert ok(admin(gw, "GET", "/admin/audit/verify"))["ok"]
    request_id = entries[0]["detail"]["request_id"]
    while True:  # so do ledger records
        rows = ok(admin(gw, "GET", f"/admin/ledger/{request_id}"))["data"]
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert rows and rows[0]["status"] == 403 and "data_classes.pii" in rows[0]["governance"]


def test_an_unknown_data_class_is_a_400_naming_it(gw: GatewayProcess) -> None:
    status, body = admin(gw, "POST", "/admin/keys", {"governance": {"data_classes": {
        "dna": {"otherwise": "refuse"}}}})
    assert status == 400 and "unknown data class 'dna'" in body["error"]["message"]


def test_a_part_forwarded_unread_is_refused_by_content_rules(
        gw: GatewayProcess, sims: tuple[SimServer, SimServer], keys: dict[str, str]) -> None:
    """An Anthropic request to an Anthropic deployment is forwarded as the client sent it
    (issue 12); a part polyroute does not translate (here a document block) would reach the
    upstream unread by the data-class check, so a key whose policy has content rules is
    refused (fail closed), and a key without one is served."""
    _eu, us = sims
    before = received(us)[0]
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                               "data": f"Contact {EMAIL}"}}
    content = [{"type": "text", "text": "Summarise this."}, document]
    for key in (keys["redact"], keys["refuse"]):
        client = anthropic.Anthropic(base_url=gw.root_url, api_key=key, max_retries=0)
        with pytest.raises(anthropic.PermissionDeniedError) as refusal:
            client.messages.create(model="us-only", max_tokens=50,
                                   messages=[{"role": "user", "content": content}])
        assert "forwards without reading it" in str(refusal.value)
    assert received(us)[0] == before  # the upstream never saw it
    plain = anthropic.Anthropic(base_url=gw.root_url, api_key=keys["plain"], max_retries=0)
    plain.messages.create(model="us-only", max_tokens=50,
                          messages=[{"role": "user", "content": content}])
    assert received(us)[0] == before + 1
