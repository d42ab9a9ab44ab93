"""The simulator's media endpoints answer as OpenAI's do: the official ``openai`` SDK calls
them directly, and every answer validates strictly against the SDK's own types (no field they
do not know). Faults act on them as on chat: error statuses, and a cut or slow speech stream."""

from __future__ import annotations

import base64
import io
import struct
from collections.abc import Iterator

import httpx
import httpx2  # the openai SDK's own httpx
import openai
import pytest
from openai.types import ImagesResponse, ModerationCreateResponse
from openai.types.audio import Transcription, TranscriptionVerbose, Translation

from polyroute.sim.media import TINY_PNG, speech_audio
from tests.support.sim import SimServer
from tests.test_azure_sim import _no_unknown_fields

KEY = "media-sim-key-5e1c"


def wav(seconds: float, rate: int = 8000) -> bytes:
    """A mono 16-bit PCM WAV file of silence."""
    data = b"\0\0" * int(seconds * rate)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", len(data)) + data)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def client(sim: SimServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url, api_key=KEY, max_retries=0)


def strict(model: type, raw: bytes) -> object:
    parsed = model.model_validate_json(raw, strict=True)  # type: ignore[attr-defined]
    _no_unknown_fields(parsed)
    return parsed


def test_image_generation_per_image_and_token_models(client: openai.OpenAI) -> None:
    raw = client.images.with_raw_response.generate(model="dall-e-3", prompt="a red fox", n=1,
                                                   size="1024x1024", quality="hd")
    images = strict(ImagesResponse, raw.content)
    assert isinstance(images, ImagesResponse)
    assert images.data and images.data[0].b64_json and images.data[0].revised_prompt
    assert images.usage is None
    urls = client.images.generate(model="dall-e-2", prompt="a fox", n=3, response_format="url")
    assert [bool(i.url) for i in urls.data or []] == [True, True, True]
    raw = client.images.with_raw_response.generate(model="gpt-image-1", prompt="a fox", n=2)
    tokens = strict(ImagesResponse, raw.content)
    assert isinstance(tokens, ImagesResponse) and tokens.usage is not None
    assert tokens.usage.output_tokens == 2 * 272 and len(tokens.data or []) == 2


def test_image_edit_takes_a_multipart_upload(client: openai.OpenAI, sim: SimServer) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(5000)
    raw = client.images.with_raw_response.edit(
        model="gpt-image-1", image=("fox.png", png, "image/png"), prompt="add a hat")
    edited = strict(ImagesResponse, raw.content)
    assert isinstance(edited, ImagesResponse) and edited.usage is not None
    form = sim.stats()["last_request"]["form"]
    assert form["fields"]["prompt"] == "add a hat"
    assert [(f["name"], f["filename"], f["size"]) for f in form["files"]] == [
        ("image", "fox.png", len(png))]


def test_transcription_formats_and_duration(client: openai.OpenAI) -> None:
    audio = ("hello.wav", wav(3.0), "audio/wav")
    raw = client.audio.transcriptions.with_raw_response.create(model="whisper-1", file=audio)
    plain = strict(Transcription, raw.content)
    assert isinstance(plain, Transcription) and "3 seconds" in plain.text
    assert plain.usage is not None and plain.usage.type == "duration"
    assert plain.usage.seconds == 3
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=audio, response_format="verbose_json")
    verbose = strict(TranscriptionVerbose, raw.content)
    assert isinstance(verbose, TranscriptionVerbose) and verbose.duration == 3.0
    text = client.audio.transcriptions.create(model="whisper-1", file=audio,
                                              response_format="text")
    assert isinstance(text, str) and text.startswith("Simulated transcript")
    raw = client.audio.transcriptions.with_raw_response.create(model="gpt-4o-transcribe",
                                                               file=audio)
    tokens = strict(Transcription, raw.content)
    assert isinstance(tokens, Transcription) and tokens.usage is not None
    assert tokens.usage.type == "tokens" and tokens.usage.input_tokens == 30
    raw = client.audio.translations.with_raw_response.create(model="whisper-1", file=audio)
    translated = strict(Translation, raw.content)
    assert isinstance(translated, Translation) and "translation" in translated.text


def test_speech_streams_audio_in_pieces(client: openai.OpenAI) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=text) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        pieces = list(response.iter_bytes(chunk_size=None))  # type: ignore[arg-type]
    assert b"".join(pieces) == speech_audio(text)
    assert len(pieces) > 1
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input="hi", response_format="wav") as response:
        assert response.headers["content-type"] == "audio/wav"


def test_speech_faults(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        client.audio.speech.create(model="tts-1@rate_limit", voice="alloy", input="hi")
    text = "a sentence long enough to be cut " * 4
    with client.audio.speech.with_streaming_response.create(
            model="tts-1@stream_cut:after_chunks=1", voice="alloy", input=text) as response:
        got = bytearray()
        with pytest.raises(httpx2.HTTPError):
            for piece in response.iter_bytes():
                got += piece
    assert 0 < len(got) < len(speech_audio(text))


def test_moderation(client: openai.OpenAI) -> None:
    raw = client.moderations.with_raw_response.create(
        model="omni-moderation-latest", input=["I will kill the process", "hello"])
    result = strict(ModerationCreateResponse, raw.content)
    assert isinstance(result, ModerationCreateResponse)
    assert [r.flagged for r in result.results] == [True, False]
    assert result.results[0].categories.violence
    with pytest.raises(openai.InternalServerError):
        client.moderations.create(model="omni-moderation-latest@server_error", input="x")


def test_rerank_jina_and_cohere_shapes(sim: SimServer) -> None:
    body = {"model": "rerank-v3.5", "query": "red fox",
            "documents": ["a blue whale", "the red fox runs", "a fox"], "top_n": 2}
    with httpx.Client() as http:
        jina = http.post(f"{sim.base_url}/rerank", json=body,
                         headers={"Authorization": f"Bearer {KEY}"}).json()
        cohere = http.post(f"{sim.root_url}/v2/rerank", json=body,
                           headers={"Authorization": f"Bearer {KEY}"}).json()
    assert [r["index"] for r in jina["results"]] == [1, 2]
    assert jina["results"][0]["document"] == {"text": "the red fox runs"}
    assert jina["usage"]["total_tokens"] > 0
    assert [r["index"] for r in cohere["results"]] == [1, 2]
    assert "document" not in cohere["results"][0]
    assert cohere["meta"]["billed_units"] == {"search_units": 1}


def test_rerank_for_coheres_sdk(sim: SimServer) -> None:
    import cohere

    co = cohere.ClientV2(api_key=KEY, base_url=sim.root_url)
    raw = co.with_raw_response.rerank(model="rerank-v3.5", query="red fox", top_n=2,
                                      documents=["a blue whale", "the red fox runs", "a fox"])
    ranked = raw.data
    _no_unknown_fields(ranked)
    assert [r.index for r in ranked.results] == [1, 2]
    assert ranked.results[0].relevance_score > ranked.results[1].relevance_score
    assert ranked.meta is not None and ranked.meta.billed_units is not None
    assert ranked.meta.billed_units.search_units == 1
    _no_unknown_fields(ranked.meta)


def test_bad_requests_get_openai_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(model="whisper-1", file=io.BytesIO(b""),
                                           extra_body={"response_format": "mp4"})
    assert caught.value.status_code == 400
    with pytest.raises(openai.BadRequestError):
        client.audio.speech.create(model="tts-1", voice="alloy", input="x" * 4097)


def test_azure_urls_serve_images_and_audio(sim: SimServer) -> None:
    azure = openai.AzureOpenAI(azure_endpoint=sim.root_url, api_key=KEY,
                               api_version="2024-10-21", max_retries=0)
    images = azure.images.generate(model="my-dalle", prompt="a fox")
    assert images.data and images.data[0].b64_json
    text = azure.audio.transcriptions.create(model="my-whisper",
                                             file=("a.wav", wav(1.0), "audio/wav"))
    assert text.text.startswith("Simulated transcript")
    assert sim.stats()["last_request"]["path"] == (
        "/openai/deployments/my-whisper/audio/transcriptions")


def test_gemini_image_output_for_google_genai(sim: SimServer) -> None:
    from google import genai
    from google.genai import types

    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(
        base_url=sim.root_url, api_version="v1beta"))
    result = client.models.generate_content(
        model="gemini-2.5-flash-image", contents="a red fox",
        config=types.GenerateContentConfig(
            response_modalities=["IMAGE"], image_config=types.ImageConfig(aspect_ratio="16:9")))
    parts = result.candidates[0].content.parts if result.candidates and \
        result.candidates[0].content else None
    assert parts and parts[0].inline_data is not None
    assert (parts[0].inline_data.data or b"").startswith(b"\x89PNG")
    assert parts[0].inline_data.mime_type == "image/png"
    usage = result.usage_metadata
    assert usage is not None and usage.candidates_token_count == 1290
    assert usage.candidates_tokens_details and \
        usage.candidates_tokens_details[0].modality == types.MediaModality.IMAGE
    sent = sim.stats()["last_request"]["body"]["generationConfig"]
    assert sent == {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "16:9"}}


def test_bedrock_image_models_for_boto3(sim: SimServer) -> None:
    import json

    import boto3

    bedrock = boto3.client("bedrock-runtime", endpoint_url=sim.root_url, region_name="us-east-1",
                           aws_access_key_id="AKIDSIMULATOR", aws_secret_access_key=KEY)
    answer = bedrock.invoke_model(modelId="amazon.nova-canvas-v1:0", body=json.dumps({
        "taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a red fox"},
        "imageGenerationConfig": {"numberOfImages": 2, "width": 1024, "height": 1024}}))
    assert answer["contentType"] == "application/json"
    images = json.loads(answer["body"].read())
    assert images["error"] is None and len(images["images"]) == 2
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images["images"])
    filtered = bedrock.invoke_model(modelId="amazon.nova-canvas-v1:0@content_policy_violation",
                                    body=json.dumps({"taskType": "TEXT_IMAGE",
                                                     "textToImageParams": {"text": "x"}}))
    assert json.loads(filtered["body"].read())["images"] == []
    with pytest.raises(bedrock.exceptions.ValidationException):
        bedrock.invoke_model(modelId="amazon.nova-canvas-v1:0", body=b'{"taskType": "X"}')


def test_bedrock_image_edits_for_boto3(sim: SimServer) -> None:
    """Nova Canvas's edit tasks answer in the generation's envelope; a body its schema refuses
    is a ValidationException that boto3 raises as such."""
    import json

    import boto3

    bedrock = boto3.client("bedrock-runtime", endpoint_url=sim.root_url, region_name="us-east-1",
                           aws_access_key_id="AKIDSIMULATOR", aws_secret_access_key=KEY)
    png = TINY_PNG
    answer = bedrock.invoke_model(modelId="amazon.nova-canvas-v1:0", body=json.dumps({
        "taskType": "IMAGE_VARIATION",
        "imageVariationParams": {"images": [png, png], "text": "a fox", "similarityStrength": 0.9},
        "imageGenerationConfig": {"numberOfImages": 3, "width": 1024, "height": 1024}}))
    assert answer["contentType"] == "application/json"
    images = json.loads(answer["body"].read())
    assert images["error"] is None and len(images["images"]) == 3
    for task, params in (("INPAINTING", {"image": png, "maskPrompt": "the sky"}),
                         ("OUTPAINTING", {"image": png, "maskImage": png, "text": "a beach",
                                          "outPaintingMode": "PRECISE"})):
        key = "inPaintingParams" if task == "INPAINTING" else "outPaintingParams"
        answer = bedrock.invoke_model(modelId="amazon.nova-canvas-v1:0",
                                      body=json.dumps({"taskType": task, key: params}))
        assert len(json.loads(answer["body"].read())["images"]) == 1
    refused = {
        "#/imageVariationParams/images: expected between 1 and 5 items, found: 6": {
            "taskType": "IMAGE_VARIATION", "imageVariationParams": {"images": [png] * 6}},
        "#/imageVariationParams/similarityStrength: 0.1 is not in 0.2..1.0": {
            "taskType": "IMAGE_VARIATION",
            "imageVariationParams": {"images": [png], "similarityStrength": 0.1}},
        "#/imageVariationParams: extraneous key [mask] is not permitted": {
            "taskType": "IMAGE_VARIATION", "imageVariationParams": {"images": [png],
                                                                    "mask": png}},
        "#/imageVariationParams/text: expected length between 1 and 1024, found 1025": {
            "taskType": "IMAGE_VARIATION",
            "imageVariationParams": {"images": [png], "text": "x" * 1025}},
        "neither PNG nor JPEG": {
            "taskType": "IMAGE_VARIATION",
            "imageVariationParams": {"images": [base64.b64encode(b"GIF89a").decode()]}},
        "takes exactly one of maskImage and maskPrompt, not 2": {
            "taskType": "INPAINTING", "inPaintingParams": {"image": png, "maskImage": png,
                                                           "maskPrompt": "the sky"}},
        "#/imageGenerationConfig/numberOfImages: 6 is not in 1..5": {
            "taskType": "IMAGE_VARIATION", "imageVariationParams": {"images": [png]},
            "imageGenerationConfig": {"numberOfImages": 6}},
    }
    for message, body in refused.items():
        with pytest.raises(bedrock.exceptions.ValidationException) as caught:
            bedrock.invoke_model(modelId="amazon.nova-canvas-v1:0", body=json.dumps(body))
        assert message in caught.value.response["Error"]["Message"]


def test_bedrock_rerank_for_boto3(sim: SimServer) -> None:
    import boto3

    agent = boto3.client("bedrock-agent-runtime", endpoint_url=sim.root_url,
                         region_name="us-east-1", aws_access_key_id="AKIDSIMULATOR",
                         aws_secret_access_key=KEY)
    documents = ["a blue whale", "the red fox runs", "a fox"]
    ranked = agent.rerank(
        queries=[{"type": "TEXT", "textQuery": {"text": "red fox"}}],
        sources=[{"type": "INLINE", "inlineDocumentSource": {
            "type": "TEXT", "textDocument": {"text": text}}} for text in documents],
        rerankingConfiguration={"type": "BEDROCK_RERANKING_MODEL",
                                "bedrockRerankingConfiguration": {
                                    "numberOfResults": 2, "modelConfiguration": {
                                        "modelArn": "arn:aws:bedrock:us-east-1::"
                                                    "foundation-model/amazon.rerank-v1:0"}}})
    assert [r["index"] for r in ranked["results"]] == [1, 2]
    assert ranked["results"][0]["relevanceScore"] > ranked["results"][1]["relevanceScore"]
    with pytest.raises(agent.exceptions.ValidationException):
        agent.rerank(queries=[{"type": "TEXT", "textQuery": {"text": "q"}}],
                     sources=[{"type": "INLINE", "inlineDocumentSource": {
                         "type": "TEXT", "textDocument": {"text": "d"}}}],
                     rerankingConfiguration={"type": "BEDROCK_RERANKING_MODEL",
                                             "bedrockRerankingConfiguration": {
                                                 "modelConfiguration": {"modelArn": "x"}}})
