"""Gemini behind OpenAI's audio and image-edit endpoints. The simulator's TTS, hearing and
image-edit answers are proven with google-genai's own types; then the ``openai`` SDK calls a
gateway whose deployments are that simulator: speech converted from Gemini's PCM to WAV or
raw PCM (other formats refused naming those), transcription and translation from an
``inlineData`` part, image edits from the uploaded images, each billed by Gemini's tokens,
and what Gemini cannot carry (MP3, a mask, timings …) passed to the group's next deployment,
or, when none is left, refused in OpenAI's error shape."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from openai.types.audio import TranscriptionTextDeltaEvent, TranscriptionTextDoneEvent

from polyroute.adapters.gemini.speech import wav as wav_of
from polyroute.sim.gemini.media import RATE, SPEECH_MIME, pcm
from polyroute.sim.media import speech_audio
from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, new_key
from tests.support.sim import SimServer
from tests.test_gemini_sim import strict_response
from tests.test_media_gateway import ledger_row
from tests.test_media_sim import wav

KEY = "gemini-media-key-3f90"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
TTS = "gemini-2.5-flash-preview-tts"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def genai_client(sim: SimServer) -> genai.Client:
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(
        base_url=sim.root_url, api_version="v1beta", timeout=10_000,
        retry_options=types.HttpRetryOptions(attempts=1)))


def _raw_answer(sim: SimServer) -> types.GenerateContentResponse:
    """The simulator's last answer, validated strictly (no field the SDK does not know)."""
    return strict_response(sim.stats()["last_response_body"])


# -- the simulator, with google-genai ----------------------------------------------------------


def test_tts_answers_pcm_in_the_voice_asked_for(genai_client: genai.Client) -> None:
    result = genai_client.models.generate_content(
        model=TTS, contents="Say cheerfully: have a wonderful day!",
        config=types.GenerateContentConfig(
            response_modalities=["AUDIO"], speech_config=types.SpeechConfig(
                voice_config=types.VoiceConfig(
                    prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Kore")))))
    assert result.candidates and result.candidates[0].content
    parts = result.candidates[0].content.parts or []
    blob = parts[0].inline_data
    assert blob is not None and blob.mime_type == SPEECH_MIME
    assert blob.data == pcm("Say cheerfully: have a wonderful day!", "Kore")
    usage = result.usage_metadata
    assert usage is not None and usage.candidates_tokens_details
    assert usage.candidates_tokens_details[0].modality == types.MediaModality.AUDIO
    seconds = len(blob.data) / 2 / RATE
    assert usage.candidates_token_count == round(seconds * 32)
    with pytest.raises(genai_errors.ClientError) as caught:  # a voice Gemini does not have
        genai_client.models.generate_content(
            model=TTS, contents="hi", config=types.GenerateContentConfig(
                response_modalities=["AUDIO"], speech_config=types.SpeechConfig(
                    voice_config=types.VoiceConfig(prebuilt_voice_config=types.
                                                   PrebuiltVoiceConfig(voice_name="alloy")))))
    assert caught.value.code == 400
    with pytest.raises(genai_errors.ClientError):  # a TTS model writes no text
        genai_client.models.generate_content(model=TTS, contents="hi")


def test_a_model_hears_inline_audio(genai_client: genai.Client) -> None:
    audio = wav(2.0)
    result = genai_client.models.generate_content(
        model="gemini-2.5-flash",
        contents=[types.Part.from_bytes(data=audio, mime_type="audio/wav"),
                  "Transcribe this audio word for word."])
    assert result.text == f"Simulated transcript of {len(audio)} bytes of audio/wav, 2 seconds."
    usage = result.usage_metadata
    assert usage is not None and usage.prompt_tokens_details
    assert {d.modality: d.token_count for d in usage.prompt_tokens_details}[
        types.MediaModality.AUDIO] == 64  # 32 a second
    translated = genai_client.models.generate_content(
        model="gemini-2.5-flash",
        contents=[types.Part.from_bytes(data=audio, mime_type="audio/wav"),
                  "Translate the speech in this audio into English."])
    assert (translated.text or "").startswith("Simulated translation of")


def test_an_image_model_edits_inline_images(genai_client: genai.Client,
                                            sim: SimServer) -> None:
    result = genai_client.models.generate_content(
        model="gemini-2.5-flash-image",
        contents=[types.Part.from_bytes(data=PNG, mime_type="image/png"), "add a hat"],
        config=types.GenerateContentConfig(response_modalities=["IMAGE"]))
    assert result.candidates and result.candidates[0].content
    blob = (result.candidates[0].content.parts or [])[0].inline_data
    assert blob is not None and (blob.data or b"").startswith(b"\x89PNG")
    sent = sim.stats()["last_request"]["body"]["contents"][0]["parts"]
    assert base64.urlsafe_b64decode(sent[0]["inlineData"]["data"]) == PNG  # the SDK's alphabet


# -- through the gateway, with the openai SDK --------------------------------------------------


@pytest.fixture(scope="module")
def gw(sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    def gemini(model: str, **extra: Any) -> dict[str, Any]:
        return {"provider": "gemini", "model": model, **extra}
    def openai_sim(model: str, **extra: Any) -> dict[str, Any]:
        return {"provider": "sim", "model": model, **extra}
    config = {
        "providers": {"gemini": {"protocol": "gemini", "base_url": sim.root_url,
                                 "api_key": "${SIM_KEY}"},
                      "sim": {"base_url": sim.base_url, "api_key": "${SIM_KEY}"},
                      "gemini-lenient": {"protocol": "gemini", "base_url": sim.root_url,
                                         "api_key": "${SIM_KEY}",
                                         "quirks": {"drop_params": ["speed", "mask"]}}},
        "model_groups": {
            "gemini-tts": {"deployments": [gemini(TTS)]},
            "gemini-hears": {"deployments": [gemini("gemini-2.5-flash")]},
            "nano": {"deployments": [gemini("gemini-2.5-flash-image")]},
            "tts-failover": {"routing": "priority", "deployments": [
                gemini(f"{TTS}@unavailable", name="mute"),
                gemini(TTS, name="voice", priority=1)]},
            "hears-cut": {"deployments": [gemini("gemini-2.5-flash@stream_cut:after_chunks=2")]},
            "speaks-or-hears": {"routing": "priority", "deployments": [
                gemini("gemini-2.5-flash", name="hears"),
                gemini(TTS, name="speaks", priority=1)]},
            # Gemini first, then a deployment of OpenAI's protocol for what Gemini cannot carry
            "voices": {"routing": "priority", "deployments": [
                gemini(TTS, name="gemini-voice"),
                openai_sim("gpt-4o-mini-tts", name="openai-voice", priority=1)]},
            "editors": {"routing": "priority", "deployments": [
                gemini("gemini-2.5-flash-image", name="gemini-edit"),
                openai_sim("gpt-image-1", name="openai-edit", priority=1)]},
            "lenient": {"deployments": [
                {"provider": "gemini-lenient", "model": TTS, "name": "lenient-voice"},
                {"provider": "gemini-lenient", "model": "gemini-2.5-flash-image",
                 "name": "lenient-edit"}]},
            "hearers": {"routing": "priority", "deployments": [
                gemini("gemini-2.5-flash", name="gemini-ear"),
                openai_sim("whisper-1", name="openai-ear", priority=1)]},
        },
        "auth": {"master_key": "${PR_MASTER}"},
        "storage": {"flush_interval_s": 0.05},
    }
    spool = tmp_path_factory.mktemp("spool")
    # What a crashed gateway left: swept at start-up. A young file may be another worker's
    # upload in flight: kept.
    (spool / "polyroute-upload-crashed").write_bytes(b"x" * 1000)
    old = time.time() - 2 * 3600
    os.utime(spool / "polyroute-upload-crashed", (old, old))
    (spool / "polyroute-upload-young").write_bytes(b"x")
    with GatewayProcess(config, env={"SIM_KEY": KEY, "PR_MASTER": MASTER_KEY,
                                     "TMPDIR": str(spool)}) as gateway:
        gateway.spool = spool  # type: ignore[attr-defined]
        yield gateway


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=new_key(gw), max_retries=0)


def _sent(sim: SimServer) -> dict[str, Any]:
    """The gateway's last request to the simulator; its parts validate as google-genai's
    own request types (which forbid unknown fields)."""
    sent: dict[str, Any] = sim.stats()["last_request"]
    for content in sent["body"]["contents"]:
        types.Content.model_validate(content)
    if "generationConfig" in sent["body"]:  # the SDK's flattened config holds every field
        types.GenerateContentConfig.model_validate(sent["body"]["generationConfig"])
    return sent


def test_speech_as_wav_and_pcm(client: openai.OpenAI, gw: GatewayProcess,
                               sim: SimServer) -> None:
    text = "Polyroute speaks through Gemini."
    with client.audio.speech.with_streaming_response.create(
            model="gemini-tts", voice="alloy", input=text, response_format="wav") as response:
        assert response.headers["content-type"] == "audio/wav"
        audio = response.read()
        request_id = response.headers["x-request-id"]
    assert audio == wav_of(pcm(text, "Zephyr"), RATE)  # alloy is Zephyr here
    sent = _sent(sim)
    assert sent["path"] == f"/v1beta/models/{TTS}:generateContent"
    assert sent["body"] == {
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        "generationConfig": {"responseModalities": ["AUDIO"], "speechConfig": {
            "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Zephyr"}}}}}
    answer = _raw_answer(sim)
    assert answer.usage_metadata is not None
    row = ledger_row(gw, request_id)  # the catalog prices Gemini's TTS by tokens
    assert (row["endpoint"], row["stream"]) == ("audio.speech", 1)
    assert row["completion_tokens"] == answer.usage_metadata.candidates_token_count
    assert row["cost_usd"] == pytest.approx(
        (row["prompt_tokens"] * 0.5 + row["completion_tokens"] * 10) / 1e6)
    raw = client.audio.speech.create(model="gemini-tts", voice="Puck", input="hi",
                                     response_format="pcm")
    assert raw.read() == pcm("hi", "Puck")
    with client.audio.speech.with_streaming_response.create(
            model="tts-failover", voice="Kore", input="hi", response_format="pcm") as response:
        assert response.headers["x-polyroute-deployment"] == "voice"
        assert response.headers["x-polyroute-attempts"].startswith("mute:")
        assert response.read() == pcm("hi", "Kore")


def test_speech_formats_and_voices_gemini_lacks_are_refused(client: openai.OpenAI,
                                                            sim: SimServer) -> None:
    """A group of only Gemini: nothing left to serve the request, a 400 naming the option and
    the deployment's reason; nothing is sent."""
    sent = sim.stats()["requests_total"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="gemini-tts", voice="alloy", input="hi",
                                   response_format="mp3")
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == ("response_format", "unsupported_value")
    assert error["message"].startswith(
        "No deployment of model 'gemini-tts' can serve this /v1/audio/speech request "
        f"('gemini/{TTS}': Gemini's speech comes back as PCM, which polyroute serves as wav "
        "or pcm, not 'mp3').")
    assert caught.value.response.headers["x-polyroute-attempts"] == (
        f"gemini/{TTS}:unsupported_value")
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="gemini-tts", voice="nobody", input="hi",
                                   response_format="wav")
    assert caught.value.body["param"] == "voice"  # type: ignore[index]
    assert "'nobody' is none of Gemini's voices" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="gemini-tts", voice="alloy", input="hi",
                                   response_format="wav", speed=1.5)
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == ("speed", "unsupported_parameter")
    assert "Gemini's voices have no speed setting" in error["message"]
    assert sim.stats()["requests_total"] == sent
    # Only a TTS model speaks: routing skips any other Gemini model, saying why.
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="gemini-hears", voice="alloy", input="hi")
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "unsupported_endpoint"
    assert "'gemini-2.5-flash' is not a Gemini TTS model" in error["message"]
    with client.audio.speech.with_streaming_response.create(
            model="speaks-or-hears", voice="alloy", input="hi") as response:
        assert response.headers["x-polyroute-attempts"].startswith(
            "hears:unsupported_endpoint,")
        assert response.headers["content-type"] == "audio/wav"  # no format asked: WAV


def test_what_gemini_cannot_carry_goes_to_the_groups_next_deployment(
        client: openai.OpenAI, gw: GatewayProcess, sim: SimServer) -> None:
    with client.audio.speech.with_streaming_response.create(
            model="voices", voice="alloy", input="hi", response_format="mp3") as response:
        assert response.headers["x-polyroute-attempts"] == (
            "gemini-voice:unsupported_value,openai-voice:ok")
        assert response.headers["x-polyroute-deployment"] == "openai-voice"
        assert response.headers["content-type"] == "audio/mpeg"
        assert response.read() == speech_audio("hi")
        request_id = response.headers["x-request-id"]
    assert sim.stats()["last_request"]["path"] == "/v1/audio/speech"
    row = ledger_row(gw, request_id)
    assert (row["deployment"], row["status"]) == ("openai-voice", 200)
    for asks, outcome in (({"speed": 1.5}, "unsupported_parameter"),
                          ({"instructions": "Speak cheerfully."}, "unsupported_parameter"),
                          ({"voice": "nobody"}, "unsupported_value")):
        with client.audio.speech.with_streaming_response.create(
                **{"model": "voices", "voice": "alloy", "input": "hi",
                   "response_format": "wav", **asks}) as response:
            assert response.headers["x-polyroute-attempts"] == (
                f"gemini-voice:{outcome},openai-voice:ok"), asks
            response.read()
    # What Gemini carries stays with Gemini, the group's first.
    with client.audio.speech.with_streaming_response.create(
            model="voices", voice="alloy", input="hi", response_format="pcm") as response:
        assert response.headers["x-polyroute-attempts"] == "gemini-voice:ok"
        assert response.read() == pcm("hi", "Zephyr")
    # A mask: Gemini edits without one, the group's OpenAI deployment with it.
    raw = client.images.with_raw_response.edit(
        model="editors", image=("fox.png", PNG, "image/png"),
        mask=("mask.png", PNG, "image/png"), prompt="add a hat")
    assert raw.headers["x-polyroute-attempts"] == (
        "gemini-edit:unsupported_parameter,openai-edit:ok")
    assert [bool(i.b64_json) for i in raw.parse().data or []] == [True]
    assert sim.stats()["last_request"]["path"] == "/v1/images/edits"
    raw = client.images.with_raw_response.edit(
        model="editors", image=("fox.png", PNG, "image/png"), prompt="add a hat")
    assert raw.headers["x-polyroute-attempts"] == "gemini-edit:ok"
    # Timings: Gemini gives none, whisper-1 does.
    raw = client.audio.transcriptions.with_raw_response.create(
        model="hearers", file=("talk.wav", wav(1.0), "audio/wav"), response_format="srt")
    assert raw.headers["x-polyroute-attempts"] == "gemini-ear:unsupported_value,openai-ear:ok"
    assert "-->" in raw.text


def test_what_the_provider_drops_is_no_reason_to_skip(client: openai.OpenAI,
                                                      sim: SimServer) -> None:
    with client.audio.speech.with_streaming_response.create(
            model="lenient", voice="Kore", input="hi", response_format="pcm",
            speed=1.5) as response:
        assert response.headers["x-polyroute-attempts"] == (
            "lenient-edit:unsupported_endpoint,lenient-voice:ok")
        assert response.read() == pcm("hi", "Kore")
    assert "speed" not in _sent(sim)["body"]["generationConfig"]
    raw = client.images.with_raw_response.edit(
        model="lenient", image=("fox.png", PNG, "image/png"),
        mask=("mask.png", b"\x89PNG mask", "image/png"), prompt="add a hat")
    assert raw.headers["x-polyroute-attempts"] == (
        "lenient-voice:unsupported_endpoint,lenient-edit:ok")
    parts = _sent(sim)["body"]["contents"][0]["parts"]  # the mask is not sent
    assert len(parts) == 2 and base64.b64decode(parts[0]["inlineData"]["data"]) == PNG


def test_transcription_and_translation(client: openai.OpenAI, gw: GatewayProcess,
                                       sim: SimServer) -> None:
    audio = wav(2.0)
    raw = client.audio.transcriptions.with_raw_response.create(
        model="gemini-hears", file=("talk.wav", audio, "audio/wav"), language="en")
    assert raw.parse().text == (
        f"Simulated transcript of {len(audio)} bytes of audio/wav, 2 seconds.")
    sent = _sent(sim)
    parts = sent["body"]["contents"][0]["parts"]
    assert parts[0]["inlineData"]["mimeType"] == "audio/wav"
    assert base64.b64decode(parts[0]["inlineData"]["data"]) == audio
    assert parts[1]["text"].startswith("Transcribe this audio") and "'en'" in parts[1]["text"]
    row = ledger_row(gw, raw.headers["x-request-id"])
    assert row["endpoint"] == "audio.transcriptions" and row["prompt_tokens"] > 64
    assert row["cost_usd"] == pytest.approx(
        (row["prompt_tokens"] * 0.3 + row["completion_tokens"] * 2.5) / 1e6)
    text = client.audio.translations.create(model="gemini-hears", response_format="text",
                                            file=("talk.mp3", b"ID3" + bytes(3000),
                                                  "application/octet-stream"))
    assert str(text).startswith("Simulated translation of 3003 bytes of audio/mp3")
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(model="gemini-hears", response_format="srt",
                                           file=("talk.wav", audio, "audio/wav"))
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == ("response_format", "unsupported_value")
    assert "not 'srt' (no timings)" in error["message"]


def test_streamed_transcription_from_gemini_events(client: openai.OpenAI, gw: GatewayProcess,
                                                   sim: SimServer) -> None:
    audio = wav(1.0)
    raw = client.audio.transcriptions.with_raw_response.create(
        model="gemini-hears", file=("talk.wav", audio, "audio/wav"), stream=True)
    *deltas, done = list(raw.parse())
    assert len(deltas) > 3 and all(isinstance(e, TranscriptionTextDeltaEvent) for e in deltas)
    assert isinstance(done, TranscriptionTextDoneEvent)
    assert done.text == "".join(e.delta for e in deltas) == (  # type: ignore[union-attr]
        f"Simulated transcript of {len(audio)} bytes of audio/wav, 1 seconds.")
    assert sim.stats()["last_request"]["path"] == (
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent")
    assert done.usage is not None
    row = ledger_row(gw, raw.headers["x-request-id"])
    assert (row["stream"], row["prompt_tokens"], row["completion_tokens"]) == (
        1, done.usage.input_tokens, done.usage.output_tokens)
    raw = client.audio.transcriptions.with_raw_response.create(
        model="hears-cut", file=("talk.wav", audio, "audio/wav"), stream=True)
    got = []
    with pytest.raises(openai.APIError):  # cut: an error event, never a 'done'
        for event in raw.parse():
            got.append(event)
    assert len(got) == 2 and all(isinstance(e, TranscriptionTextDeltaEvent) for e in got)
    assert ledger_row(gw, raw.headers["x-request-id"])["error_class"] is not None


def test_image_edit(client: openai.OpenAI, gw: GatewayProcess, sim: SimServer) -> None:
    raw = client.images.with_raw_response.edit(
        model="nano", image=("fox.png", PNG, "image/png"), prompt="add a hat",
        size="1024x1024")
    assert [bool(i.b64_json) for i in raw.parse().data or []] == [True]
    sent = _sent(sim)
    assert sent["path"] == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    parts = sent["body"]["contents"][0]["parts"]
    assert parts[0]["inlineData"]["mimeType"] == "image/png"
    assert base64.b64decode(parts[0]["inlineData"]["data"]) == PNG
    assert parts[1] == {"text": "add a hat"}
    assert sent["body"]["generationConfig"] == {"responseModalities": ["IMAGE"],
                                                "imageConfig": {"aspectRatio": "1:1"}}
    row = ledger_row(gw, raw.headers["x-request-id"])
    assert (row["endpoint"], row["completion_tokens"]) == ("images.edits", 1290)
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(model="nano", image=("fox.png", PNG, "image/png"),
                           mask=("mask.png", PNG, "image/png"), prompt="add a hat")
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == ("mask", "unsupported_parameter")
    assert error["message"].startswith(
        "No deployment of model 'nano' can serve this /v1/images/edits request "
        "('gemini/gemini-2.5-flash-image': the parameter 'mask' is not supported by Gemini: "
        "it edits from the prompt alone, without a mask")


def test_uploads_are_removed_and_a_crashs_leftovers_swept(gw: GatewayProcess) -> None:
    spool: Path = gw.spool  # type: ignore[attr-defined]
    deadline = time.monotonic() + 2
    while len(list(spool.glob("polyroute-upload-*"))) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p.name for p in spool.glob("polyroute-upload-*")] == ["polyroute-upload-young"]
