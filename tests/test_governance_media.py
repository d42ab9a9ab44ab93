"""Governance over the media endpoints (issues 16 and 11), through the official ``openai`` SDK
against a real gateway and the simulator: the texts an image, speech, rerank, moderation or
transcription request carries meet the same prompt-side policy as a chat prompt (detectors
refusing, routing and redacting — the simulator's recorded request shows what the vendor
got —, deny-terms, the prompt guardrails); an upload the gateway cannot read is refused by
the rules that would have to read it unless they opt in (``uninspectable: allow``); a
transcript meets the answer checks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx2  # the openai SDK's own httpx
import openai
import pytest

from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess, ledger_row
from tests.support.policy import MASTER_KEY, admin, ok
from tests.support.sim import SimServer
from tests.test_media_sim import wav

EMAIL = "jane.doe@example.com"
CARD = "4242 4242 4242 4242"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=SIM_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def gw(sim: SimServer) -> Iterator[GatewayProcess]:
    def dep(model: str, **extra: Any) -> dict[str, Any]:
        return {"provider": "sim", "model": model, **extra}
    config = {
        "providers": {
            "sim": {"base_url": sim.base_url, "api_key": "${SIM_KEY}"},
        },
        "model_groups": {
            "dalle": {"deployments": [dep("dall-e-3")]},
            # the first deployment is not cleared for personal data, the second is
            "dalle-pii": {"routing": "priority", "deployments": [
                dep("dall-e-3", name="plain", priority=0),
                dep("dall-e-3", name="cleared", priority=1, tags={"pii-ok": "true"})]},
            "gpt-image": {"deployments": [dep("gpt-image-1")]},
            "embed": {"deployments": [dep("text-embedding-3-small")]},
            "whisper": {"deployments": [dep("whisper-1")]},
            "tts": {"deployments": [dep("tts-1")]},
            "omni-moderation-latest": {"deployments": [dep("omni-moderation-latest")]},
            "rerank": {"deployments": [dep("jina-reranker-v2-base-multilingual")]},
        },
        "guardrails": {
            "falcon": {"type": "deny_terms", "terms": ["Project Falcon"], "scoped": True},
            "falcon-text-only": {"type": "deny_terms", "terms": ["Project Falcon"],
                                 "scoped": True, "uninspectable": "allow"},
        },
        "auth": {"master_key": "${PR_MASTER}"},
        "storage": {"flush_interval_s": 0.05},
    }
    with GatewayProcess(config, env={"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}) as gateway:
        yield gateway


def client(gw: GatewayProcess, governance: dict[str, Any]) -> openai.OpenAI:
    key = ok(admin(gw, "POST", "/admin/keys", {"governance": governance}))["key"]
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def refusal(caught: pytest.ExceptionInfo[openai.PermissionDeniedError]) -> str:
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "permission_error"
    assert body["code"] == "policy_violation" and caught.value.status_code == 403
    message: str = body["message"]
    return message


def sent(sim: SimServer) -> dict[str, Any]:
    last: dict[str, Any] = sim.stats()["last_request"]
    return last


def test_a_detector_refuses_a_pii_image_prompt(gw: GatewayProcess, sim: SimServer) -> None:
    refusing = client(gw, {"data_classes": {"pii": {"allow_tags": ["pii-ok"],
                                                    "otherwise": "refuse"}}})
    before = sim.stats()["requests_total"]
    with pytest.raises(openai.PermissionDeniedError) as caught:
        refusing.images.generate(model="dalle", prompt=f"a portrait of {EMAIL}")
    message = refusal(caught)
    assert "rule data_classes.pii" in message and "email" in message
    assert sim.stats()["requests_total"] == before  # nothing was sent
    row = ledger_row(gw, caught.value.response.headers["x-request-id"])
    assert (row["endpoint"], row["status"], row["error_class"]) == (
        "images.generations", 403, "policy_violation")
    assert row["governance"].startswith("refused: ")
    # the same prompt routes to the deployment cleared for it, when the group has one
    raw = refusing.images.with_raw_response.generate(
        model="dalle-pii", prompt=f"a portrait of {EMAIL}")
    assert raw.headers["x-polyroute-deployment"] == "cleared"
    assert "pii:routed" in ledger_row(gw, raw.headers["x-request-id"])["governance"]
    # and a prompt without personal data goes anywhere
    assert refusing.images.generate(model="dalle", prompt="a red fox").data


def test_redaction_reaches_the_upstream_redacted(gw: GatewayProcess, sim: SimServer) -> None:
    redacting = client(gw, {"data_classes": {"pii": {"otherwise": "redact"}},
                            "uninspectable": "allow"})
    raw = redacting.images.with_raw_response.generate(
        model="dalle", prompt=f"a card {CARD} held by {EMAIL}", n=1, size="1024x1024")
    assert raw.parse().data
    body = sent(sim)["body"]
    assert body["prompt"] == "a card [CARD_1] held by [EMAIL_1]"
    assert (body["model"], body["n"], body["size"]) == ("dall-e-3", 1, "1024x1024")
    assert "redacted card=1 email=1" in ledger_row(gw, raw.headers["x-request-id"])["governance"]
    # rerank: the query and each document, wherever they sit
    reranked = redacting.post("/rerank", cast_to=httpx2.Response, body={
        "model": "rerank", "query": f"who is {EMAIL}?",
        "documents": ["a whale", f"mail {EMAIL} now"], "top_n": 1})
    assert reranked.json()["results"]
    body = sent(sim)["body"]
    assert body["query"] == "who is [EMAIL_1]?"
    assert body["documents"] == ["a whale", "mail [EMAIL_1] now"]
    # a form's prompt and a file's name (the upload itself goes as it came, by the opt-in)
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    redacting.images.edit(model="gpt-image", image=(f"{EMAIL} photo.png", png, "image/png"),
                          prompt=f"write {EMAIL} on it")
    form = sent(sim)["form"]
    assert form["fields"]["prompt"] == "write [EMAIL_1] on it"
    assert [f["filename"] for f in form["files"]] == ["[EMAIL_1] photo.png"]


def test_deny_terms_in_speech_and_moderation(gw: GatewayProcess, sim: SimServer) -> None:
    guarded = client(gw, {"deny_terms": ["Project Falcon"]})
    before = sim.stats()["requests_total"]
    with pytest.raises(openai.PermissionDeniedError) as caught:
        guarded.audio.speech.create(model="tts", voice="alloy",
                                    input="The launch of project falcon is on Monday.")
    message = refusal(caught)
    assert "rule deny_terms" in message and "'Project Falcon'" in message
    with pytest.raises(openai.PermissionDeniedError):
        guarded.audio.speech.create(model="tts", voice="alloy", input="Read this calmly.",
                                    instructions="Sound like Project Falcon's narrator.")
    with pytest.raises(openai.PermissionDeniedError):
        guarded.moderations.create(input=["fine", "Project Falcon leaks"])
    assert sim.stats()["requests_total"] == before
    with guarded.audio.speech.with_streaming_response.create(
            model="tts", voice="alloy", input="A harmless line.") as response:
        assert response.read()
    # a guardrail hook the policy names reads the speech input too
    hooked = client(gw, {"guardrails": ["falcon"]})
    with pytest.raises(openai.PermissionDeniedError) as caught:
        hooked.audio.speech.create(model="tts", voice="alloy", input="Project Falcon, go.")
    assert "guardrail 'falcon' (request)" in refusal(caught)


def test_an_upload_is_refused_where_it_must_be_read_unless_the_policy_opts_in(
        gw: GatewayProcess, sim: SimServer) -> None:
    audio = ("talk.wav", wav(1.0), "audio/wav")
    strict = client(gw, {"deny_terms": ["Project Falcon"]})
    before = sim.stats()["requests_total"]
    with pytest.raises(openai.PermissionDeniedError) as caught:
        strict.audio.transcriptions.create(model="whisper", file=audio)
    message = refusal(caught)
    assert "the uploaded file 'talk.wav'" in message and "cannot read" in message
    assert "deny_terms" in message and '"uninspectable": "allow"' in message
    assert message.startswith("Refused by the governance policy of key '")
    assert sim.stats()["requests_total"] == before
    request_id = caught.value.response.headers["x-request-id"]
    row = ledger_row(gw, request_id)
    assert (row["endpoint"], row["status"]) == ("audio.transcriptions", 403)
    deadline = time.monotonic() + 30
    while True:  # refusals reach the audit log in batches
        entries = [e for e in ok(admin(gw, "GET", "/admin/audit?outcome=refused"))["data"]
                   if e["detail"].get("request_id") == request_id]
        if entries or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert entries and "cannot read" in entries[0]["detail"]["rule"]
    # a policy with only routing rules reads nothing: the upload goes
    assert client(gw, {"deny_vendors": ["xai"]}).audio.transcriptions.create(
        model="whisper", file=audio).text.startswith("Simulated transcript")
    lenient = client(gw, {"deny_terms": ["Project Falcon"], "uninspectable": "allow"})
    assert lenient.audio.transcriptions.create(
        model="whisper", file=audio).text.startswith("Simulated transcript")
    with pytest.raises(openai.PermissionDeniedError):  # its text is still read
        lenient.audio.transcriptions.create(model="whisper", file=audio,
                                            prompt="Terms: Project Falcon")
    # a prompt guardrail decides for itself
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client(gw, {"guardrails": ["falcon"]}).audio.translations.create(
            model="whisper", file=audio)
    assert "guardrail 'falcon' (request)" in refusal(caught)
    assert client(gw, {"guardrails": ["falcon-text-only"]}).audio.translations.create(
        model="whisper", file=audio).text.startswith("Simulated translation")
    # an image to moderate is as unreadable as an upload
    with pytest.raises(openai.PermissionDeniedError) as caught:
        strict.moderations.create(input=[
            {"type": "text", "text": "hello"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}])
    assert "an image to moderate (input[1])" in refusal(caught)


def test_a_policy_with_a_bad_uninspectable_is_refused_when_written(gw: GatewayProcess) -> None:
    status, body = admin(gw, "POST", "/admin/keys", {"governance": {"uninspectable": "maybe"}})
    assert status == 400
    assert "uninspectable" in body["error"]["message"] and "\n" not in body["error"]["message"]


def test_a_transcript_meets_the_answer_checks(gw: GatewayProcess) -> None:
    # The simulator's transcript names the file: a file named after an address makes the
    # model "say" it. An answer-only policy reads no upload, so the file goes.
    audio = (f"call {EMAIL} now.wav", wav(2.0), "audio/wav")
    redacting = client(gw, {"answer_data_classes": {"pii": "redact"}})
    raw = redacting.audio.transcriptions.with_raw_response.create(model="whisper", file=audio)
    text = raw.parse().text
    assert text.startswith("Simulated transcript of call [EMAIL_1] now.wav") and EMAIL not in text
    row = ledger_row(gw, raw.headers["x-request-id"])
    assert "redacted email=1" in row["governance"] and row["status"] == 200
    verbose = redacting.audio.transcriptions.create(model="whisper", file=audio,
                                                    response_format="verbose_json")
    assert verbose.segments and EMAIL not in verbose.segments[0].text
    assert EMAIL not in verbose.text
    plain = redacting.audio.translations.create(model="whisper", file=audio,
                                                response_format="text")
    assert "[EMAIL_1]" in str(plain) and EMAIL not in str(plain)
    refusing = client(gw, {"answer_data_classes": {"pii": "refuse"}})
    with pytest.raises(openai.PermissionDeniedError) as caught:
        refusing.audio.transcriptions.create(model="whisper", file=audio)
    assert "the answer holds email" in refusal(caught)
    row = ledger_row(gw, caught.value.response.headers["x-request-id"])
    assert (row["status"], row["error_class"]) == (403, "policy_violation")
    assert row["cost_usd"] > 0  # the vendor did the work: billed at its cost
    assert refusing.audio.transcriptions.create(
        model="whisper", file=("quiet.wav", wav(1.0), "audio/wav")).text


def test_embeddings_input_meets_the_policy(gw: GatewayProcess, sim: SimServer) -> None:
    redacting = client(gw, {"data_classes": {"pii": {"otherwise": "redact"}},
                            "deny_terms": ["Project Falcon"]})
    raw = redacting.embeddings.with_raw_response.create(
        model="embed", input=[f"mail {EMAIL}", "a plain line"], dimensions=8)
    assert len(raw.parse().data) == 2
    body = sent(sim)["body"]
    assert body["input"] == ["mail [EMAIL_1]", "a plain line"] and body["dimensions"] == 8
    assert "redacted email=1" in ledger_row(gw, raw.headers["x-request-id"])["governance"]
    before = sim.stats()["requests_total"]
    with pytest.raises(openai.PermissionDeniedError) as caught:
        redacting.embeddings.create(model="embed", input="notes on Project Falcon")
    assert "rule deny_terms" in refusal(caught)
    with pytest.raises(openai.PermissionDeniedError) as caught:  # token ids cannot be read
        redacting.embeddings.create(model="embed", input=[[1, 2, 3]])
    assert "token ids (input[0])" in refusal(caught)
    assert sim.stats()["requests_total"] == before
    lenient = client(gw, {"deny_terms": ["Project Falcon"], "uninspectable": "allow"})
    assert lenient.embeddings.create(model="embed", input=[[1, 2, 3]]).data
    assert sent(sim)["body"]["input"] == [[1, 2, 3]]
