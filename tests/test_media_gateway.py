"""Images, audio, rerank and moderation through a real gateway, with the official ``openai``
SDK as the client and the simulator as every upstream: keys, budgets, the ledger (endpoint
and cost per unit), failover, routing's skipping of protocols without the endpoint, OpenAI's
error shape for malformed requests, speech streamed as it arrives, and uploads spooled to
disk so the gateway's memory does not grow with them."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2  # the openai SDK's own httpx
import openai
import pytest

from polyroute.sim.media import TINY_PNG, speech_audio
from tests.conftest import SIM_KEY
from tests.support.audio import MP3_FRAME_S, mp3, ogg_opus
from tests.support.gateway import GatewayProcess, ledger_row
from tests.support.policy import MASTER_KEY, new_key
from tests.support.sim import SimServer
from tests.test_media_sim import wav


def media_config(sim: SimServer) -> dict[str, Any]:
    def dep(model: str, **extra: Any) -> dict[str, Any]:
        return {"provider": "sim", "model": model, **extra}
    claude = {"provider": "claude", "model": "claude-sonnet-4-5", "name": "claude"}
    return {
        "providers": {
            "sim": {"base_url": sim.base_url, "api_key": "${SIM_KEY}"},
            "cohere": {"base_url": f"{sim.root_url}/v2", "api_key": "${SIM_KEY}"},
            "claude": {"protocol": "anthropic", "base_url": sim.root_url,
                       "api_key": "${SIM_KEY}"},
            "azure": {"protocol": "azure", "base_url": sim.root_url, "api_key": "${SIM_KEY}"},
            "gemini": {"protocol": "gemini", "base_url": sim.root_url, "api_key": "${SIM_KEY}"},
            "bedrock": {"protocol": "bedrock", "base_url": sim.root_url, "region": "us-east-1",
                        "api_key": "${SIM_KEY}"},  # a Bedrock API key: no SigV4 needed
        },
        "model_groups": {
            "dalle": {"deployments": [dep("dall-e-3")]},
            "dalle-failover": {"routing": "priority", "deployments": [
                dep("dall-e-3@unavailable", name="primary"),
                dep("dall-e-3", name="backup", priority=1)]},
            "dalle-refuses": {"deployments": [dep("dall-e-3@content_policy_violation")]},
            "mixed": {"routing": "priority", "deployments": [claude, dep("dall-e-3", priority=1)]},
            "claude-only": {"deployments": [claude]},
            "gpt-image": {"deployments": [dep("gpt-image-1")]},
            "azure-dalle": {"deployments": [{"provider": "azure", "model": "my-dalle", "price": {
                "input_per_1m": 0, "output_per_1m": 0, "per_unit": {"image": 0.05}}}]},
            "nano": {"deployments": [{"provider": "gemini", "model": "gemini-2.5-flash-image"}]},
            "draws-and-speaks": {"routing": "priority", "deployments": [
                {"provider": "gemini", "model": "gemini-2.5-flash-image", "name": "nano"},
                dep("tts-1", priority=1)]},
            "bedrock-rerank": {"deployments": [{"provider": "bedrock",
                                                "model": "amazon.rerank-v1:0"}]},
            "canvas": {"deployments": [{"provider": "bedrock",
                                        "model": "amazon.nova-canvas-v1:0"}]},
            "canvas-or-dalle": {"routing": "priority", "deployments": [
                {"provider": "bedrock", "model": "amazon.nova-canvas-v1:0", "name": "canvas"},
                dep("dall-e-3", name="dalle", priority=1)]},
            "canvas-or-gpt-image": {"routing": "priority", "deployments": [
                {"provider": "bedrock", "model": "amazon.nova-canvas-v1:0", "name": "canvas"},
                dep("gpt-image-1", name="gpt-image", priority=1)]},
            "whisper": {"deployments": [dep("whisper-1")]},
            "whisper-failover": {"routing": "priority", "deployments": [
                dep("whisper-1@server_error", name="broken"),
                dep("whisper-1", name="spare", priority=1)]},
            "tts": {"deployments": [dep("tts-1")]},
            "tts-failover": {"routing": "priority", "deployments": [
                dep("tts-1@unavailable", name="mute"), dep("tts-1", name="voice", priority=1)]},
            "tts-cut": {"deployments": [dep("tts-1@stream_cut:after_chunks=1")]},
            "omni-moderation-latest": {"deployments": [dep("omni-moderation-latest")]},
            "rerank": {"deployments": [{"provider": "cohere", "model": "rerank-v3.5"}]},
        },
        "auth": {"master_key": "${PR_MASTER}"},
        "storage": {"flush_interval_s": 0.05},
        "server": {"max_upload_bytes": 48 * 1024 * 1024, "body_timeout_s": 1.0},
    }


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=SIM_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def gw(sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    spool = tmp_path_factory.mktemp("spool")
    with GatewayProcess(media_config(sim), env={"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY,
                                                "TMPDIR": str(spool)}) as gateway:
        gateway.spool = spool  # type: ignore[attr-defined]
        yield gateway


@pytest.fixture(scope="module")
def key(gw: GatewayProcess) -> str:
    return new_key(gw)


@pytest.fixture(scope="module")
def client(gw: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def test_images_priced_per_image_by_size_and_quality(client: openai.OpenAI,
                                                     gw: GatewayProcess) -> None:
    raw = client.images.with_raw_response.generate(model="dalle", prompt="a red fox", n=2,
                                                   size="1024x1792", quality="hd")
    images = raw.parse()
    assert len(images.data or []) == 2 and images.data and images.data[0].b64_json
    row = ledger_row(gw, raw.headers["x-request-id"])
    assert row["endpoint"] == "images.generations" and row["status"] == 200
    assert row["upstream_model"] == "dall-e-3"
    assert row["cost_usd"] == pytest.approx(2 * 0.12)
    raw = client.images.with_raw_response.generate(model="gpt-image", prompt="a fox")
    usage = raw.parse().usage
    assert usage is not None
    row = ledger_row(gw, raw.headers["x-request-id"])  # no per-image price: its tokens
    assert (row["prompt_tokens"], row["completion_tokens"]) == (usage.input_tokens,
                                                                 usage.output_tokens)
    assert row["cost_usd"] == pytest.approx((usage.input_tokens * 5 + 272 * 40) / 1e6)


def test_azure_deployment_and_configured_unit_price(client: openai.OpenAI,
                                                    gw: GatewayProcess, sim: SimServer) -> None:
    raw = client.images.with_raw_response.generate(model="azure-dalle", prompt="a fox")
    assert raw.parse().data
    assert sim.stats()["last_request"]["path"] == "/openai/deployments/my-dalle/images/generations"
    assert ledger_row(gw, raw.headers["x-request-id"])["cost_usd"] == pytest.approx(0.05)


def test_a_gemini_image_model_behind_the_images_api(client: openai.OpenAI,
                                                   gw: GatewayProcess, sim: SimServer) -> None:
    raw = client.images.with_raw_response.generate(model="nano", prompt="a red fox",
                                                   size="1792x1024")
    images = raw.parse()
    assert [bool(i.b64_json) for i in images.data or []] == [True]
    sent = sim.stats()["last_request"]
    assert sent["path"] == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert sent["body"] == {
        "contents": [{"role": "user", "parts": [{"text": "a red fox"}]}],
        "generationConfig": {"responseModalities": ["IMAGE"],
                             "imageConfig": {"aspectRatio": "16:9"}}}
    row = ledger_row(gw, raw.headers["x-request-id"])  # billed by its output tokens
    assert row["endpoint"] == "images.generations" and row["completion_tokens"] == 1290
    assert row["cost_usd"] == pytest.approx((row["prompt_tokens"] * 0.3 + 1290 * 30) / 1e6)
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="nano", prompt="a fox", n=2)
    assert caught.value.code == "unsupported_parameter"
    assert caught.value.body["param"] == "n"  # type: ignore[index]
    # It does not speak: a speech request skips it for the next deployment.
    with client.audio.speech.with_streaming_response.create(
            model="draws-and-speaks", voice="alloy", input="hi") as response:
        assert response.headers["x-polyroute-attempts"].startswith("nano:unsupported_endpoint,")
        assert response.read() == speech_audio("hi")


def test_a_bedrock_image_model_behind_the_images_api(client: openai.OpenAI,
                                                    gw: GatewayProcess, sim: SimServer) -> None:
    raw = client.images.with_raw_response.generate(model="canvas", prompt="a red fox", n=2,
                                                   size="1024x1024", quality="hd")
    assert [bool(i.b64_json) for i in raw.parse().data or []] == [True, True]
    sent = sim.stats()["last_request"]
    assert sent["path"] == "/model/amazon.nova-canvas-v1:0/invoke"  # the decoded path
    assert sent["body"] == {
        "taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a red fox"},
        "imageGenerationConfig": {"numberOfImages": 2, "width": 1024, "height": 1024,
                                  "quality": "premium"}}
    row = ledger_row(gw, raw.headers["x-request-id"])
    assert (row["endpoint"], row["cost_usd"]) == ("images.generations", pytest.approx(0.12))
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="canvas", prompt="a fox", response_format="url")
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == ("response_format", "unsupported_parameter")
    assert "the images come back as bytes: ask for b64_json" in error["message"]
    # A URL, which Bedrock cannot give: the group's next deployment, which can.
    raw = client.images.with_raw_response.generate(model="canvas-or-dalle", prompt="a fox",
                                                   response_format="url")
    assert raw.headers["x-polyroute-attempts"] == "canvas:unsupported_parameter,dalle:ok"
    assert [bool(i.url) for i in raw.parse().data or []] == [True]


PNG = base64.b64decode(TINY_PNG)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4


def test_a_bedrock_image_edit_is_a_nova_canvas_variation(client: openai.OpenAI,
                                                         gw: GatewayProcess,
                                                         sim: SimServer) -> None:
    raw = client.images.with_raw_response.edit(
        model="canvas", image=[("fox.png", PNG, "image/png"), ("hat.jpg", JPEG, "image/jpeg")],
        prompt="the fox wearing the hat", n=2, size="1024x1024")
    assert [bool(i.b64_json) for i in raw.parse().data or []] == [True, True]
    sent = sim.stats()["last_request"]
    assert sent["path"] == "/model/amazon.nova-canvas-v1:0/invoke"
    assert sent["body"] == {
        "taskType": "IMAGE_VARIATION",
        "imageVariationParams": {"images": [base64.b64encode(PNG).decode(),
                                            base64.b64encode(JPEG).decode()],
                                 "text": "the fox wearing the hat"},
        "imageGenerationConfig": {"numberOfImages": 2, "width": 1024, "height": 1024,
                                  "quality": "standard"}}
    row = ledger_row(gw, raw.headers["x-request-id"])  # Nova Canvas's price, per image
    assert (row["endpoint"], row["status"]) == ("images.edits", 200)
    assert (row["upstream_model"], row["cost_usd"]) == ("amazon.nova-canvas-v1:0",
                                                         pytest.approx(2 * 0.04))


def test_a_mask_skips_bedrock_for_the_groups_next_deployment(client: openai.OpenAI,
                                                            gw: GatewayProcess) -> None:
    image, mask = ("fox.png", PNG, "image/png"), ("mask.png", PNG, "image/png")
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(model="canvas", image=image, mask=mask, prompt="add a hat")
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == ("mask", "unsupported_parameter")
    assert "black-and-white image (black: the area to change)" in error["message"]
    assert ledger_row(gw, caught.value.response.headers["x-request-id"])["status"] == 400
    raw = client.images.with_raw_response.edit(model="canvas-or-gpt-image", image=image,
                                               mask=mask, prompt="add a hat")
    assert raw.headers["x-polyroute-attempts"] == "canvas:unsupported_parameter,gpt-image:ok"
    assert raw.parse().data
    # What else Nova Canvas cannot take: more than five images or answers, a WebP image.
    for images, n, param in (([image] * 6, 1, "image"), ([image], 6, "n"),
                             ([("fox.webp", b"RIFF....WEBP", "image/webp")], 1, "image")):
        with pytest.raises(openai.BadRequestError) as caught:
            client.images.edit(model="canvas", image=images, n=n, prompt="a fox")
        error = caught.value.body
        assert isinstance(error, dict)
        assert (error["param"], error["code"]) == (param, "unsupported_value"), error


def test_bedrock_rerank_answers_in_coheres_shape(client: openai.OpenAI, gw: GatewayProcess,
                                                sim: SimServer) -> None:
    answer = client.post("/rerank", cast_to=httpx2.Response, body={
        "model": "bedrock-rerank", "query": "red fox", "top_n": 2, "return_documents": True,
        "documents": ["a whale", "the red fox", "a fox"]})
    ranked = answer.json()
    assert [(r["index"], r["document"]["text"]) for r in ranked["results"]] == [
        (1, "the red fox"), (2, "a fox")]
    assert ranked["meta"] == {"billed_units": {"search_units": 1}}
    sent = sim.stats()["last_request"]
    assert sent["path"] == "/rerank"
    assert sent["body"]["rerankingConfiguration"]["bedrockRerankingConfiguration"] == {
        "modelConfiguration": {
            "modelArn": "arn:aws:bedrock:us-east-1::foundation-model/amazon.rerank-v1:0"},
        "numberOfResults": 2}
    assert sent["body"]["sources"][1] == {"type": "INLINE", "inlineDocumentSource": {
        "type": "TEXT", "textDocument": {"text": "the red fox"}}}
    row = ledger_row(gw, answer.headers["x-request-id"])
    assert (row["endpoint"], row["cost_usd"]) == ("rerank", pytest.approx(0.001))


def test_image_edit_upload_reaches_the_upstream_whole(client: openai.OpenAI,
                                                      sim: SimServer) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 400
    edited = client.images.edit(model="gpt-image", image=("fox.png", png, "image/png"),
                                prompt="add a hat", size="1024x1024")
    assert edited.data
    form = sim.stats()["last_request"]["form"]
    assert form["fields"] == {"model": "gpt-image-1", "prompt": "add a hat",
                              "size": "1024x1024"}
    assert [(f["filename"], f["content_type"], f["sha256"]) for f in form["files"]] == [
        ("fox.png", "image/png", hashlib.sha256(png).hexdigest())]


def test_failover_to_the_next_deployment(client: openai.OpenAI, gw: GatewayProcess) -> None:
    raw = client.images.with_raw_response.generate(model="dalle-failover", prompt="a fox")
    assert raw.headers["x-polyroute-deployment"] == "backup"
    assert raw.headers["x-polyroute-attempts"].startswith("primary:")
    raw2 = client.audio.transcriptions.with_raw_response.create(
        model="whisper-failover", file=("a.wav", wav(2.0), "audio/wav"))
    assert raw2.parse().text.startswith("Simulated transcript")
    assert raw2.headers["x-polyroute-deployment"] == "spare"  # the upload was sent twice
    assert ledger_row(gw, raw2.headers["x-request-id"])["deployment"] == "spare"


def test_a_protocol_without_the_endpoint_is_skipped(client: openai.OpenAI) -> None:
    raw = client.images.with_raw_response.generate(model="mixed", prompt="a fox")
    assert raw.headers["x-polyroute-attempts"].split(",")[0] == "claude:unsupported_endpoint"
    assert raw.headers["x-polyroute-deployment"] == "sim/dall-e-3"
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="claude-only", prompt="a fox")
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "unsupported_endpoint"
    assert "/v1/images/generations" in error["message"] and error["param"] == "model"


def test_transcription_billed_per_second(client: openai.OpenAI, gw: GatewayProcess) -> None:
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper", file=("talk.wav", wav(12.0), "audio/wav"))
    assert raw.parse().text.startswith("Simulated transcript")
    row = ledger_row(gw, raw.headers["x-request-id"])
    assert row["endpoint"] == "audio.transcriptions"
    assert row["cost_usd"] == pytest.approx(12 * 0.0001)
    text = client.audio.translations.with_raw_response.create(
        model="whisper", file=("talk.wav", wav(6.0), "audio/wav"), response_format="text")
    assert text.parse().startswith("Simulated translation")  # type: ignore[union-attr]
    row = ledger_row(gw, text.headers["x-request-id"])  # the WAV header's duration
    assert row["endpoint"] == "audio.translations"
    assert row["cost_usd"] == pytest.approx(6 * 0.0001)


@pytest.mark.parametrize(("filename", "audio", "mime", "seconds"), [
    ("talk.mp3", mp3(250), "audio/mpeg", 250 * MP3_FRAME_S),  # 6 s in 24,000 bytes
    ("talk.ogg", ogg_opus(7.5), "audio/ogg", 7.5),
])
def test_a_plain_text_transcript_of_compressed_audio_is_billed_by_its_headers(
        client: openai.OpenAI, gw: GatewayProcess, filename: str, audio: bytes, mime: str,
        seconds: float) -> None:
    """The answer says nothing of the length; the upload's own headers do (at 128 kbit/s
    the MP3 would have been billed 1.5 s, the Opus file 0.07 s)."""
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper", file=(filename, audio, mime), response_format="text")
    assert raw.parse().startswith("Simulated transcript")  # type: ignore[union-attr]
    row = ledger_row(gw, raw.headers["x-request-id"])
    assert row["cost_usd"] == pytest.approx(seconds * 0.0001)
    assert row["usage_estimated"] == 0


def test_audio_of_an_unknown_format_is_billed_at_128_kbits_and_marked_estimated(
        client: openai.OpenAI, gw: GatewayProcess) -> None:
    noise = bytes(range(1, 251)) * 128  # 32,000 bytes no reader knows: 2 s at 128 kbit/s
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper", file=("talk.xyz", noise, "application/octet-stream"),
        response_format="text")
    row = ledger_row(gw, raw.headers["x-request-id"])
    assert row["cost_usd"] == pytest.approx(2 * 0.0001)
    assert row["usage_estimated"] == 1
    measured = client.audio.transcriptions.with_raw_response.create(
        model="whisper", file=("talk.wav", wav(3.0), "audio/wav"), response_format="text")
    assert ledger_row(gw, measured.headers["x-request-id"])["usage_estimated"] == 0


def test_speech_streams_and_is_billed_per_character(client: openai.OpenAI,
                                                    gw: GatewayProcess) -> None:
    text = "Polyroute speaks every vendor's dialect. " * 3
    with client.audio.speech.with_streaming_response.create(
            model="tts", voice="alloy", input=text) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        pieces = list(response.iter_bytes(chunk_size=None))  # type: ignore[arg-type]
        request_id = response.headers["x-request-id"]
    assert b"".join(pieces) == speech_audio(text) and len(pieces) > 1
    row = ledger_row(gw, request_id)
    assert row["endpoint"] == "audio.speech" and row["stream"] == 1
    assert row["cost_usd"] == pytest.approx(len(text) * 0.000015)
    with client.audio.speech.with_streaming_response.create(
            model="tts-failover", voice="alloy", input="hi") as response:
        assert response.headers["x-polyroute-deployment"] == "voice"
        assert response.read() == speech_audio("hi")


def test_speech_cut_midway_ends_the_response_short(client: openai.OpenAI,
                                                   gw: GatewayProcess) -> None:
    text = "long enough to arrive in several pieces " * 8
    got = bytearray()
    with client.audio.speech.with_streaming_response.create(
            model="tts-cut", voice="alloy", input=text) as response:
        request_id = response.headers["x-request-id"]
        with pytest.raises(httpx2.HTTPError):
            for piece in response.iter_bytes():
                got += piece
    assert 0 < len(got) < len(speech_audio(text))
    row = ledger_row(gw, request_id)
    assert row["error_class"] is not None and row["endpoint"] == "audio.speech"


def test_moderation_and_rerank(client: openai.OpenAI, gw: GatewayProcess, key: str) -> None:
    raw = client.moderations.with_raw_response.create(input="I will kill the build")
    assert raw.parse().results[0].flagged
    row = ledger_row(gw, raw.headers["x-request-id"])
    assert (row["endpoint"], row["cost_usd"]) == ("moderations", 0.0)
    reranked = client.post("/rerank", cast_to=httpx2.Response, body={
        "model": "rerank", "query": "red fox",
        "documents": ["a whale", "the red fox", "a fox"], "top_n": 2})
    answer = reranked.json()
    assert [r["index"] for r in answer["results"]] == [1, 2]
    row = ledger_row(gw, reranked.headers["x-request-id"])
    assert (row["endpoint"], row["cost_usd"]) == ("rerank", pytest.approx(0.002))
    import cohere  # Cohere's own SDK, pointed at the gateway (POST /v2/rerank)

    co = cohere.ClientV2(api_key=key, base_url=gw.root_url)
    ranked = co.with_raw_response.rerank(model="rerank", query="red fox", top_n=1,
                                         documents=["a whale", "the red fox"])
    assert [r.index for r in ranked.data.results] == [1]
    row = ledger_row(gw, ranked.headers["x-request-id"])
    assert (row["endpoint"], row["upstream_model"]) == ("rerank", "rerank-v3.5")


def test_malformed_requests_get_openai_errors(client: openai.OpenAI, gw: GatewayProcess,
                                              key: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="dalle", prompt="a fox", n=11)
    assert caught.value.body["param"] == "n"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="tts", voice="alloy", input="")
    assert caught.value.body["param"] == "input"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/rerank", cast_to=httpx2.Response, body={"model": "rerank", "query": "q"})
    assert caught.value.body["param"] == "documents"  # type: ignore[index]
    headers = {"Authorization": f"Bearer {key}"}
    r = httpx.post(f"{gw.base_url}/audio/transcriptions", json={"model": "whisper"},
                   headers=headers)
    assert r.status_code == 400 and "multipart/form-data" in r.json()["error"]["message"]
    r = httpx.post(f"{gw.base_url}/audio/transcriptions", headers=headers,
                   files={"file": ("a.wav", wav(0.1), "audio/wav")})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    r = httpx.post(f"{gw.base_url}/images/edits", content=b"not a form at all",
                   headers={**headers, "Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 400 and "malformed" in r.json()["error"]["message"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gw.base_url, api_key="sk-wrong", max_retries=0) \
            .images.generate(model="dalle", prompt="a fox")


def test_budget_reserves_the_units(gw: GatewayProcess, sim: SimServer) -> None:
    poor = openai.OpenAI(base_url=gw.base_url, api_key=new_key(gw, daily_budget_usd=0.1),
                         max_retries=0)
    before = sim.stats()["requests_by_path"].get("/v1/images/generations", 0)
    with pytest.raises(openai.RateLimitError) as caught:
        poor.images.generate(model="dalle", prompt="a fox", n=2, quality="hd")  # $0.16
    assert caught.value.code == "budget_exceeded"
    assert sim.stats()["requests_by_path"].get("/v1/images/generations", 0) == before
    assert poor.images.generate(model="dalle", prompt="a fox").data  # $0.04 fits


def test_metrics_count_each_endpoint(gw: GatewayProcess, client: openai.OpenAI) -> None:
    client.moderations.create(input="hello")
    client.images.generate(model="dalle", prompt="a fox")
    status, body = gw.get("/metrics")
    assert status == 200
    text = body.decode()
    assert 'endpoint="moderations"' in text and 'endpoint="images.generations"' in text
    assert 'polyroute_media_units_total{model_group="dalle",unit="image",vendor="sim"}' in text


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_uploads_do_not_grow_the_gateways_memory(client: openai.OpenAI, gw: GatewayProcess,
                                                 sim: SimServer, tmp_path: Path) -> None:
    """A 32 MiB upload after a 4 MiB one raises the gateway's peak memory by far less than
    its size: it is spooled to disk and sent from there a piece at a time. The temporary
    files are gone once the request ends."""
    def upload(size: int) -> None:
        path = tmp_path / f"{size}.mp3"
        with path.open("wb") as out:
            for _ in range(size // (1 << 20)):
                out.write(hashlib.shake_256(str(size).encode()).digest(1 << 20))
        with path.open("rb") as audio:  # the SDK streams an open file, it does not read it
            result = client.audio.transcriptions.create(model="whisper", file=audio)
        assert f"{size} bytes" in result.text
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert sim.stats()["last_request"]["form"]["files"][0]["sha256"] == digest

    upload(4 << 20)
    before = _peak_rss(gw.proc.pid)
    upload(32 << 20)
    grown = _peak_rss(gw.proc.pid) - before
    assert grown < 8 << 20, f"peak memory grew {grown >> 20} MiB for a 32 MiB upload"
    assert list(gw.spool.iterdir()) == []  # type: ignore[attr-defined]


def test_an_upload_over_the_limit_is_refused_before_it_is_read(gw: GatewayProcess,
                                                               key: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
    connection.putrequest("POST", "/v1/audio/transcriptions")
    connection.putheader("Authorization", f"Bearer {key}")
    connection.putheader("Content-Type", "multipart/form-data; boundary=x")
    connection.putheader("Content-Length", str(64 << 20))
    connection.endheaders()  # and not a byte of the body
    response = connection.getresponse()
    error = json.loads(response.read())["error"]
    connection.close()
    assert response.status == 413 and "limit" in error["message"]
    assert list(gw.spool.iterdir()) == []  # type: ignore[attr-defined]


def test_a_keys_rate_limit_counts_media_requests(gw: GatewayProcess) -> None:
    limited = openai.OpenAI(base_url=gw.base_url, api_key=new_key(gw, rpm=1), max_retries=0)
    limited.moderations.create(input="hello")
    with pytest.raises(openai.RateLimitError) as caught:
        limited.audio.speech.create(model="tts", voice="alloy", input="hi")
    assert caught.value.code == "rpm_limit_exceeded"


def test_an_upstream_refusal_reaches_the_client_in_openais_shape(client: openai.OpenAI,
                                                                 sim: SimServer) -> None:
    before = sim.stats()["requests_by_path"].get("/v1/images/generations", 0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="dalle-refuses", prompt="a fox")
    assert caught.value.code == "content_policy_violation"
    assert "safety system" in caught.value.message
    # A refusal of the request itself is not retried elsewhere.
    assert sim.stats()["requests_by_path"]["/v1/images/generations"] == before + 1


def test_a_stalled_upload_gets_408(gw: GatewayProcess, key: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    connection.putrequest("POST", "/v1/audio/transcriptions")
    connection.putheader("Authorization", f"Bearer {key}")
    connection.putheader("Content-Type", "multipart/form-data; boundary=x")
    connection.putheader("Content-Length", "100000")
    connection.endheaders(b'--x\r\nContent-Disposition: form-data; name="file"; '
                          b'filename="a.wav"\r\n\r\nRIFF')  # then nothing more
    response = connection.getresponse()  # after server.body_timeout_s of silence
    error = json.loads(response.read())["error"]
    connection.close()
    assert response.status == 408 and error["code"] == "request_timeout"
    assert list(gw.spool.iterdir()) == []  # type: ignore[attr-defined]
