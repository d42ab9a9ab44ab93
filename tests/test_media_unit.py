"""The pure parts of the media endpoints: the multipart body sent upstream, what an answer is
billed by, and unit prices."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import wave
from collections.abc import AsyncIterator
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import msgspec
import pytest

from polyroute.adapters.bedrock_converse import media as bedrock_media
from polyroute.adapters.bedrock_converse.serves import serves as bedrock_serves
from polyroute.adapters.gemini import media as gemini_media
from polyroute.adapters.gemini import speech as gemini_speech
from polyroute.adapters.multipart import form_body
from polyroute.adapters.openai_chat.media import TranscriptMeter, json_body, measured
from polyroute.errors import ContentFiltered, UpstreamError, UpstreamProtocolError
from polyroute.model.media import Form, MediaRequest, Units, UploadedFile
from polyroute.model.price import Price
from polyroute.model.upstream import Deployment, Endpoint, Quirks
from polyroute.surface.openai import uploads
from polyroute.surface.openai.uploads import audio_seconds
from tests.support.audio import MP3_FRAME_S, mp3, ogg_opus
from tests.test_media_sim import wav


def _collect(parts: object) -> bytes:
    async def run() -> bytes:
        return b"".join([piece async for piece in parts])  # type: ignore[attr-defined]
    return asyncio.run(run())


def test_multipart_body_is_well_formed_and_its_length_exact(tmp_path: Path) -> None:
    audio = tmp_path / "a.bin"
    audio.write_bytes(bytes(range(256)) * 3000)  # several pieces of 256 KiB
    file = UploadedFile("file", 'we"ird\r\nname.mp3', "audio/mpeg", str(audio),
                        audio.stat().st_size)
    form = Form((("language", "fr"), ("prompt", "élan")), (file,))
    body = form_body(form, "whisper-1")
    sent = _collect(body.pieces())
    assert len(sent) == body.length
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {body.content_type}\r\n\r\n".encode() + sent)
    parts = list(message.iter_parts())
    assert [p.get_param("name", header="content-disposition") for p in parts] == [
        "model", "language", "prompt", "file"]
    assert parts[0].get_payload(decode=True) == b"whisper-1"
    assert parts[2].get_payload(decode=True) == "élan".encode()
    assert parts[3].get_payload(decode=True) == audio.read_bytes()
    # A quote or a line break in a client's file name cannot end the header or add one.
    assert parts[3]["content-disposition"].count("\n") == 0
    assert parts[3].get_filename() == "we%22ird%0D%0Aname.mp3"


def test_json_body_replaces_only_the_model() -> None:
    fields = msgspec.json.decode(b'{"model":"dalle","prompt":"a fox","n":2,"x":{"k":1}}',
                                 type=dict[str, msgspec.Raw])
    request = MediaRequest("images.generations", "dalle", fields)
    assert msgspec.json.decode(json_body(request, "dall-e-3")) == {
        "model": "dall-e-3", "prompt": "a fox", "n": 2, "x": {"k": 1}}


@pytest.mark.parametrize(("endpoint", "body", "content_type", "usage", "units"), [
    ("images.generations", b'{"data":[{},{}]}', "application/json", None,
     Units("image:1024x1024:hd", 2)),
    ("images.generations", b'{"data":[{}],"usage":{"input_tokens":9,"output_tokens":272,'
     b'"total_tokens":281}}', "application/json", (9, 272), Units("image:1024x1024:hd", 1)),
    ("audio.transcriptions", b'{"text":"hi","usage":{"type":"duration","seconds":7}}',
     "application/json", None, Units("second", 7)),
    ("audio.transcriptions", b'{"text":"hi","duration":3.5}', "application/json", None,
     Units("second", 3.5)),
    ("audio.transcriptions", b'{"text":"hi","usage":{"type":"tokens","input_tokens":30,'
     b'"output_tokens":5,"total_tokens":35}}', "application/json", (30, 5), None),
    ("audio.transcriptions", b"hi\n", "text/plain", None, None),
    ("audio.transcriptions", b"1\n00:00:00,000 --> 00:00:04,500\nhi\n\n2\n"
     b"00:00:04,500 --> 01:02:03,250\nthere\n", "application/x-subrip", None,
     Units("second", 3723.25)),
    ("audio.translations", b"WEBVTT\n\n00:00:00.000 --> 00:00:07.125\nhi\n", "text/vtt",
     None, Units("second", 7.125)),
    ("rerank", b'{"results":[],"meta":{"billed_units":{"search_units":2}}}',
     "application/json", None, Units("search", 2)),
    ("rerank", b'{"results":[],"usage":{"total_tokens":40}}', "application/json", (40, 0),
     None),
    ("moderations", b'{"results":[]}', "application/json", None, None),
])
def test_what_an_answer_is_billed_by(endpoint: str, body: bytes, content_type: str,
                                     usage: tuple[int, int] | None,
                                     units: Units | None) -> None:
    request = MediaRequest(endpoint, "m", estimate=Units("image:1024x1024:hd", 2))
    got_usage, got_units = measured(request, body, content_type)
    assert (None if got_usage is None else (got_usage.prompt_tokens,
                                            got_usage.completion_tokens)) == usage
    assert got_units == units


def test_unit_price_falls_back_to_the_shorter_name() -> None:
    price = Price(0, 0, per_unit=(("image", 0.05), ("image:1024x1024:hd", 0.08)))
    assert price.unit_price("image:1024x1024:hd") == 0.08
    assert price.unit_price("image:512x512:standard") == 0.05
    assert price.unit_price("second") is None


@pytest.mark.parametrize(("size", "ratio"), [
    ("1024x1024", "1:1"), ("1792x1024", "16:9"), ("1024x1792", "9:16"), ("1536x1024", "3:2"),
    ("auto", None), (None, None), ("0x0", None)])
def test_gemini_aspect_ratio(size: str | None, ratio: str | None) -> None:
    assert gemini_media.aspect_ratio(size) == ratio


def test_gemini_answer_without_an_image_is_a_content_filter_error() -> None:
    text_only = (b'{"candidates":[{"content":{"parts":[{"text":"I cannot draw that."}]},'
                 b'"finishReason":"STOP"}]}')
    with pytest.raises(ContentFiltered, match="I cannot draw that"):
        gemini_media.images_answer(text_only, "nano", 0)
    body, count, usage = gemini_media.images_answer(
        b'{"candidates":[{"content":{"parts":[{"inlineData":{"mimeType":"image/png",'
        b'"data":"AAAA"}}]}}],"usageMetadata":{"promptTokenCount":4,'
        b'"candidatesTokenCount":1290}}', "nano", 7)
    assert msgspec.json.decode(body) == {"created": 7, "data": [{"b64_json": "AAAA"}]}
    assert count == 1 and usage is not None and usage.completion_tokens == 1290


def test_a_bedrock_edit_without_what_nova_cannot_carry(tmp_path: Path) -> None:
    """A provider that drops the mask (and OpenAI's background) serves the edit as a variation
    of the images alone; a prompt over Nova's 1024 characters skips the deployment; an image
    named as no image type at all is left for Nova to judge."""
    png, mask = tmp_path / "fox.png", tmp_path / "mask.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n fox")
    mask.write_bytes(b"\x89PNG\r\n\x1a\n mask")
    files = (UploadedFile("image", "fox.png", "image/png", str(png), 13),
             UploadedFile("image", "fox", "application/octet-stream", str(png), 13),
             UploadedFile("mask", "mask.png", "image/png", str(mask), 14))
    form = Form((("prompt", "a hat"), ("background", "opaque"), ("quality", "high")), files)
    request = MediaRequest("images.edits", "canvas", form=form)
    strict = Deployment("canvas", "bedrock", "amazon.nova-canvas-v1:0",
                        Endpoint("bedrock", "bedrock", "http://127.0.0.1:1", {}))
    lenient = Deployment("canvas", "bedrock", "amazon.nova-canvas-v1:0", Endpoint(
        "bedrock", "bedrock", "http://127.0.0.1:1", {},
        Quirks(drop_params=frozenset({"mask", "background"}))))
    refused = bedrock_serves(request, strict)
    assert refused is not None and (refused.param, refused.code) == (
        "background", "unsupported_parameter")
    assert bedrock_serves(request, lenient) is None
    assert msgspec.json.decode(bedrock_media.edit_body(request)) == {
        "taskType": "IMAGE_VARIATION",
        "imageVariationParams": {"images": [base64.b64encode(png.read_bytes()).decode()] * 2,
                                 "text": "a hat"},
        "imageGenerationConfig": {"numberOfImages": 1, "quality": "premium"}}
    long = MediaRequest("images.edits", "canvas",
                        form=Form((("prompt", "x" * 1025),), files[:1]))
    refused = bedrock_serves(long, strict)
    assert refused is not None and (refused.param, refused.code) == ("prompt",
                                                                    "unsupported_value")
    # Generation's limits are Nova's too: at most 5 images, a prompt of 1024 characters.
    for fields, param in (({"prompt": b'"a fox"', "n": b"6"}, "n"),
                          ({"prompt": msgspec.json.encode("x" * 1025)}, "prompt")):
        generation = MediaRequest("images.generations", "canvas",
                                  {k: msgspec.Raw(v) for k, v in fields.items()})
        refused = bedrock_serves(generation, strict)
        assert refused is not None and (refused.param, refused.code) == (param,
                                                                        "unsupported_value")
    generation = MediaRequest("images.generations", "canvas",
                              {"prompt": msgspec.Raw(b'"a fox"'), "n": msgspec.Raw(b"5")})
    assert bedrock_serves(generation, strict) is None


def test_bedrock_rerank_url_and_model_arn() -> None:
    assert bedrock_media.rerank_url("https://bedrock-runtime.eu-west-1.amazonaws.com") == (
        "https://bedrock-agent-runtime.eu-west-1.amazonaws.com/rerank")
    assert bedrock_media.rerank_url("http://127.0.0.1:9000") == "http://127.0.0.1:9000/rerank"
    assert bedrock_media.model_arn("cohere.rerank-v3-5:0", "us-west-2") == (
        "arn:aws:bedrock:us-west-2::foundation-model/cohere.rerank-v3-5:0")
    arn = "arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0"
    assert bedrock_media.model_arn(arn, "eu-west-1") == arn


@pytest.mark.parametrize(("audio", "seconds"), [
    (mp3(500), 500 * MP3_FRAME_S),
    (ogg_opus(3.2), 3.2),
    (wav(1.25), 1.25),
    (b"\x00" * 4000, None),  # no format
    (mp3(1)[:3], None),  # a header cut short
    (b"OggS" + b"\x00" * 40, None),  # an Ogg page with nothing in it
])
def test_an_uploads_duration_is_read_from_its_headers(tmp_path: Path, audio: bytes,
                                                      seconds: float | None) -> None:
    path = tmp_path / "upload"  # spooled uploads have no extension: the bytes tell
    path.write_bytes(audio)
    found = audio_seconds(UploadedFile("file", "a", "audio/mpeg", str(path), len(audio)))
    assert found == (pytest.approx(seconds, abs=1e-6) if seconds is not None else None)


def test_governance_reads_every_text_and_puts_redacted_ones_back_in_place() -> None:
    from polyroute.engine.media_governance import prompt_of, put_back
    from polyroute.surface.openai import media_decode

    body = msgspec.json.encode({
        "model": "rerank", "query": "find a@b.io", "top_n": 1,
        "documents": ["plain", {"text": "mail a@b.io", "title": "x", "type": "doc"}]})
    request = media_decode.rerank(body)
    assert [(t.place, t.text) for t in request.texts] == [
        (("query",), "find a@b.io"), (("documents", 0), "plain"),
        (("documents", 1, "text"), "mail a@b.io"), (("documents", 1, "title"), "x")]
    untouched = request.fields
    put_back(request, prompt_of(request))  # nothing redacted: the client's bytes stay
    assert request.fields is untouched
    prompt = prompt_of(request)
    prompt.messages[0].content = "find [EMAIL_1]"
    prompt.messages[2].content = "mail [EMAIL_1]"
    put_back(request, prompt)
    assert request.fields is not None
    sent = {k: msgspec.json.decode(v) for k, v in request.fields.items()}
    assert sent == {"model": "rerank", "query": "find [EMAIL_1]", "top_n": 1, "documents": [
        "plain", {"text": "mail [EMAIL_1]", "title": "x", "type": "doc"}]}
    moderation = media_decode.moderation(msgspec.json.encode({"input": [
        {"type": "text", "text": "hi"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}))
    assert [(t.place, t.text) for t in moderation.texts] == [(("input", 0, "text"), "hi")]
    assert moderation.unread == "an image to moderate (input[1])"
    assert media_decode.moderation(b'{"input": "hi"}').unread is None


def test_sweep_removes_only_stale_uploads(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    stale = tmp_path / "polyroute-upload-crashed"
    fresh = tmp_path / "polyroute-upload-in-flight"
    other = tmp_path / "someone-elses-file"
    for path in (stale, fresh, other):
        path.write_bytes(b"x")
    os.utime(stale, (now - uploads.STALE_AFTER_S - 1, now - uploads.STALE_AFTER_S - 1))
    os.utime(fresh, (now - 5, now - 5))
    os.utime(other, (now - 10 * uploads.STALE_AFTER_S,) * 2)
    (tmp_path / "polyroute-upload-dir").mkdir()  # not a file: left alone
    assert uploads.sweep(str(tmp_path), now=now) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "polyroute-upload-dir", "polyroute-upload-in-flight", "someone-elses-file"]
    assert uploads.sweep(str(tmp_path / "missing"), now=now) == 0  # logged, not raised


def _meter_run(body: list[bytes], content_type: str = "text/event-stream"
               ) -> tuple[TranscriptMeter, list[bytes], BaseException | None]:
    form = Form((("stream", "true"),), ())
    meter = TranscriptMeter(MediaRequest("audio.transcriptions", "m", form=form), "dep")

    async def chunks() -> AsyncIterator[bytes]:
        for piece in body:
            yield piece

    async def run() -> tuple[list[bytes], BaseException | None]:
        got: list[bytes] = []
        try:
            async for piece in meter.relay(content_type, chunks()):
                got.append(piece)
        except UpstreamError as exc:
            return got, exc
        return got, None
    got, error = asyncio.run(run())
    return meter, got, error


def test_transcript_meter_bills_the_done_event_and_refuses_a_cut() -> None:
    delta = b'data: {"type":"transcript.text.delta","delta":"Hel"}\n\n'
    done = (b'data: {"type":"transcript.text.done","text":"Hello","usage":{"type":"tokens",'
            b'"input_tokens":20,"output_tokens":2,"total_tokens":22}}\n\n')
    meter, got, error = _meter_run([delta[:10], delta[10:] + done[:5], done[5:]])
    assert error is None and b"".join(got) == delta + done and got[0] == delta  # whole events
    assert meter.usage is not None and (meter.usage.prompt_tokens,
                                        meter.usage.completion_tokens) == (20, 2)
    meter, got, error = _meter_run([delta, delta])  # the upstream stopped before 'done'
    assert isinstance(error, UpstreamProtocolError) and b"".join(got) == delta + delta
    meter, got, error = _meter_run([delta + b'data: {"error":{"message":"boom"}}\n\n'])
    assert isinstance(error, UpstreamError) and "boom" in error.message and got == [delta]
    meter, got, error = _meter_run([b'{"text":"hi","usage":{"type":"duration","seconds":3}}'],
                                   "application/json")  # whisper-1 ignores stream
    assert error is None and meter.units == Units("second", 3.0)


def test_gemini_speech_becomes_a_wav_file() -> None:
    pcm = bytes(range(200))
    data = gemini_speech.wav(pcm, 24_000)
    with wave.open(io.BytesIO(data)) as audio:
        assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (
            24_000, 1, 2)
        assert audio.readframes(audio.getnframes()) == pcm
    answer = msgspec.json.encode({"candidates": [{"content": {"parts": [{"inlineData": {
        "mimeType": "audio/L16;codec=pcm;rate=16000",
        "data": base64.b64encode(pcm).decode()}}]}}]})
    body, kind, _ = gemini_speech.speech_answer(answer, "wav", "dep")
    assert kind == "audio/wav" and body == gemini_speech.wav(pcm, 16_000)
    with pytest.raises(ContentFiltered):
        gemini_speech.speech_answer(b'{"promptFeedback":{"blockReason":"SAFETY"}}', "wav", "d")
