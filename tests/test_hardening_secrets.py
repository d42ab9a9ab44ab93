"""Secrets and integrity (issue 10, items 11-13), each test written as the attack: the official
SDKs or a raw socket against a real gateway process, in front of a real (careless) upstream."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import anthropic
import openai
import pytest
from aiohttp import web

from tests.support.gateway import GatewayProcess, free_port
from tests.support.policy import MASTER_KEY, new_key

# Upstream keys, one per protocol. A careless vendor echoes whichever it was sent.
KEYS = {
    "oai": "sk-vendor-openai-3c9f1e7a55b04d2e",
    "ant": "sk-ant-vendor-81d4a0c6e2f94b13",
    "gem": "AIzaVendorGemini-6f2b8d1c0e9a4",
    "bed": "ABSKVendorBedrock-b7e15a93c4d2",
    "az": "azurevendorkey0d5c3b9e8f7a61",
}
ENV = {f"KEY_{name.upper()}": key for name, key in KEYS.items()}
USER = [{"role": "user", "content": "hello"}]

GEMINI_OK = {"candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]},
                             "finishReason": "STOP"}],
             "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1,
                               "totalTokenCount": 2}}
BEDROCK_OK = {"output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
              "stopReason": "end_turn",
              "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}}


class CarelessVendor:
    """A loopback upstream that speaks every protocol's error shape and puts the credential it
    received into the message — whole, or (model names containing 'partial') cut short, as
    vendors do. It records the raw path and body of every request. Gemini and Bedrock models
    whose name does not start with 'leak' get a real answer, so that paths can be checked."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CarelessVendor:
        self._thread.start()
        assert self._started.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.raw_path, body))
        h = request.headers
        key = (h.get("x-api-key") or h.get("x-goog-api-key") or h.get("api-key")
               or h.get("Authorization", "").removeprefix("Bearer "))
        path = unquote(request.path)
        echoed = f"{key[:-3]}***" if "partial" in path + body.decode(errors="replace") else key
        if ":generateContent" in path or ":streamGenerateContent" in path:
            if not path.split("/")[-1].startswith("leak"):
                return web.json_response(GEMINI_OK)
            return web.json_response({"error": {
                "code": 400, "message": f"API key not valid: {echoed}.",
                "status": "INVALID_ARGUMENT"}}, status=400)
        if "/converse" in path:
            if "/model/leak" not in path:
                return web.json_response(BEDROCK_OK)
            return web.json_response(
                {"message": f"The security token included in the request is invalid: {echoed}"},
                status=400, headers={"x-amzn-ErrorType": "ValidationException:http://x/"})
        if path.endswith("/messages"):
            if json.loads(body).get("stream"):
                return await self._anthropic_stream(request, echoed)
            return web.json_response({"type": "error", "error": {
                "type": "invalid_request_error", "message": f"invalid x-api-key {echoed}"}},
                status=400)
        status = 401 if "auth" in body.decode(errors="replace") else 400
        return web.json_response({"error": {
            "message": f"Incorrect API key provided: {echoed}.", "type": "invalid_request_error",
            "param": None, "code": "invalid_api_key"}}, status=status)

    async def _anthropic_stream(self, request: web.Request, echoed: str) -> web.StreamResponse:
        """An answer that starts, then fails with the key in the error event."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = [
            ("message_start", {"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                "content": [], "stop_reason": None, "usage": {"input_tokens": 1,
                                                               "output_tokens": 0}}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": "Hi"}}),
            ("error", {"type": "error", "error": {
                "type": "overloaded_error", "message": f"key {echoed} is over quota"}}),
        ]
        for name, data in events:
            await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        return response


@pytest.fixture(scope="module")
def vendor() -> Iterator[CarelessVendor]:
    with CarelessVendor() as server:
        yield server


def provider(vendor: CarelessVendor, name: str, protocol: str, **extra: Any) -> dict[str, Any]:
    return {"protocol": protocol, "base_url": vendor.url + ("/v1" if protocol == "openai" else ""),
            "api_key": "${KEY_" + name.upper() + "}", "any_model": True, **extra}


@pytest.fixture(scope="module")
def gateway(vendor: CarelessVendor) -> Iterator[GatewayProcess]:
    config = {
        "providers": {
            "oai": provider(vendor, "oai", "openai"),
            "ant": provider(vendor, "ant", "anthropic"),
            "gem": provider(vendor, "gem", "gemini"),
            "bed": provider(vendor, "bed", "bedrock", region="us-east-1",
                            quirks={"allowed_s3_prefixes": ["s3://team-images/shared/"]}),
            "az": provider(vendor, "az", "azure", auth="api-key"),
        },
        "storage": {"flush_interval_s": 0.05},
    }
    with GatewayProcess(config, env=ENV, log_level="DEBUG") as gw:
        yield gw
        log = gw.log()
        for key in KEYS.values():
            assert key[:12] not in log, "an upstream key reached the gateway's log"


def no_key_in(text: str) -> None:
    for key in KEYS.values():
        assert key[:12] not in text, f"an upstream key reached the client: {text}"


# -- 11. upstream keys are never reflected to clients ------------------------------------------


@pytest.mark.parametrize("model", ["oai/leak", "ant/leak", "gem/leak", "bed/leak", "az/leak",
                                   "oai/partial", "gem/leak-partial", "bed/leak-partial"])
def test_upstream_error_text_never_carries_the_key(gateway: GatewayProcess, model: str) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model=model, messages=USER)
    text = refused.value.response.text
    no_key_in(text)
    assert "[REDACTED]" in text, "the vendor's message is kept, with the key cut out"


def test_upstream_auth_failure_is_redacted_too(gateway: GatewayProcess) -> None:
    """401 from the vendor: the gateway's key was refused; the client gets 502, key-free."""
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="oai/leak", messages=[
            {"role": "user", "content": "auth"}])
    assert refused.value.status_code == 502
    no_key_in(refused.value.response.text)


def test_redacted_in_every_dialect(gateway: GatewayProcess) -> None:
    messages = anthropic.Anthropic(base_url=gateway.root_url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as refused:
        messages.messages.create(model="gem/leak", max_tokens=10, messages=USER)  # type: ignore[arg-type]
    no_key_in(refused.value.response.text)
    assert "[REDACTED]" in refused.value.response.text

    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as failed:
        client.responses.create(model="bed/leak", input="hello")
    no_key_in(failed.value.response.text)
    assert "[REDACTED]" in failed.value.response.text


def test_error_event_in_a_started_stream_is_redacted(gateway: GatewayProcess) -> None:
    """The vendor fails after the answer started, naming the key in its error event."""
    client = anthropic.Anthropic(base_url=gateway.root_url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.APIError) as cut, client.messages.stream(
            model="ant/leak", max_tokens=10, messages=USER) as stream:  # type: ignore[arg-type]
        for _ in stream.text_stream:
            pass
    no_key_in(str(cut.value.body) + str(cut.value))
    assert "[REDACTED]" in str(cut.value.body) + str(cut.value)


# -- 12. the client never picks the path on the vendor's host -----------------------------------


def _paths(vendor: CarelessVendor, since: int) -> list[str]:
    return [path for path, _ in vendor.requests[since:]]


@pytest.mark.parametrize("model", [
    "gem/../../v1beta/files", "gem/x/../../../upload/v1beta/files", "gem/..", "gem/.",
    "gem/models/../files", "gem/tunedModels/a/b",
])
def test_gemini_model_names_cannot_leave_the_model_path(
        gateway: GatewayProcess, vendor: CarelessVendor, model: str) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    before = len(vendor.requests)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model, messages=USER)
    assert "not a Gemini model id" in refused.value.message
    assert _paths(vendor, before) == [], "a refused model name must not reach the vendor"


@pytest.mark.parametrize(("model", "segment"), [
    ("gem/x?key=other#frag", "models/x%3Fkey%3Dother%23frag"),
    ("gem/x:streamGenerateContent", "models/x%3AstreamGenerateContent"),
    ("gem/a%2F..%2Ffiles", "models/a%252F..%252Ffiles"),
    ("gem/gemini-2.5-flash", "models/gemini-2.5-flash"),
    ("gem/tunedModels/my-tuned-1", "tunedModels/my-tuned-1"),
])
def test_gemini_model_names_are_one_escaped_segment(
        gateway: GatewayProcess, vendor: CarelessVendor, model: str, segment: str) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    before = len(vendor.requests)
    client.chat.completions.create(model=model, messages=USER)
    assert _paths(vendor, before) == [f"/v1beta/{segment}:generateContent"]


@pytest.mark.parametrize("model", ["bed/..", "bed/.", "az/..", "az/."])
def test_dot_segments_never_reach_bedrock_or_azure(
        gateway: GatewayProcess, vendor: CarelessVendor, model: str) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    before = len(vendor.requests)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model, messages=USER)
    assert refused.value.code == "invalid_model"
    assert _paths(vendor, before) == []


def test_bedrock_refuses_client_s3_uris_outside_the_allow_list(
        gateway: GatewayProcess, vendor: CarelessVendor) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)

    def ask(url: str) -> Any:
        return client.chat.completions.create(model="bed/claude", messages=[{
            "role": "user", "content": [{"type": "text", "text": "what is this?"},
                                        {"type": "image_url", "image_url": {"url": url}}]}])

    for url in ("s3://payroll/2026/salaries.png", "s3://team-images/private/x.png",
                "s3://team-images-shared/x.png", "S3://team-images/shared/../../payroll/x.png"):
        before = len(vendor.requests)
        with pytest.raises(openai.PermissionDeniedError) as refused:
            ask(url)
        assert refused.value.code == "s3_uri_not_allowed"
        assert refused.value.body["param"] == "messages[0].content[1].image_url.url"  # type: ignore[index]
        assert _paths(vendor, before) == [], f"{url} reached Bedrock"

    before = len(vendor.requests)
    assert ask("s3://team-images/shared/cat.png").choices[0].message.content == "ok"
    ((path, body),) = vendor.requests[before:]
    assert path == "/model/claude/converse"
    image = json.loads(body)["messages"][0]["content"][1]["image"]
    assert image["source"] == {"s3Location": {"uri": "s3://team-images/shared/cat.png"}}


def test_a_bedrock_provider_without_an_allow_list_refuses_every_s3_uri(
        vendor: CarelessVendor) -> None:
    config = {"providers": {"bed": provider(vendor, "bed", "bedrock", region="us-east-1")}}
    with GatewayProcess(config, env=ENV) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(model="bed/claude", messages=[{
                "role": "user", "content": [{"type": "image_url", "image_url": {
                    "url": "s3://team-images/shared/cat.png"}}]}])


# -- 13. robustness: bytes, depth, request ids --------------------------------------------------


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break  # the answer is whole; the server merely kept the connection
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.fixture(scope="module")
def keyed(vendor: CarelessVendor) -> Iterator[GatewayProcess]:
    config = {
        "providers": {"gem": provider(vendor, "gem", "gemini")},
        "auth": {"master_key": "${PR_MASTER}"},
        "storage": {"flush_interval_s": 0.05},
    }
    with GatewayProcess(config, env={**ENV, "PR_MASTER": MASTER_KEY}, log_level="DEBUG") as gw:
        yield gw


ENDPOINTS = {
    "/v1/chat/completions": lambda e: e["error"]["type"] == "authentication_error",
    "/v1/embeddings": lambda e: e["error"]["type"] == "authentication_error",
    "/v1/responses": lambda e: e["error"]["type"] == "authentication_error",
    "/v1/messages": lambda e: e["type"] == "error"
    and e["error"]["type"] == "authentication_error",
    "/admin/keys": lambda e: e["error"]["type"] == "authentication_error",
    "/model/gem%2Fx/converse": lambda e: set(e) == {"message"},  # Bedrock's shape
}


@pytest.mark.parametrize("path", list(ENDPOINTS))
@pytest.mark.parametrize("header", [b"Authorization: Bearer sk-pr-\xff\xfe\xc3(",
                                    b"x-api-key: \x80abc\xed\xa0\x80",
                                    b"Authorization: AWS4-HMAC-SHA256 Credential=sk-pr-\xff\xfe"
                                    b"/20250101/us-east-1/bedrock/aws4_request, "
                                    b"SignedHeaders=host, Signature=00"])
def test_non_utf8_key_is_a_401_in_the_dialects_shape(
        keyed: GatewayProcess, path: str, header: bytes) -> None:
    body = b'{"model": "gem/x", "messages": [], "input": "x", "max_tokens": 1}'
    status, _, answer = raw_exchange(keyed.port, (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n").encode() + header
        + b"\r\n\r\n" + body)
    assert status == 401, answer
    assert ENDPOINTS[path](json.loads(answer))
    assert "Traceback" not in keyed.log()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(("path", "template", "shape"), [
    ("/v1/chat/completions", '{"model": "gem/x", "messages": [{"role": "user", "content": '
     '"hi"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": '
     '{"x": %s}}}]}', "openai"),
    ("/v1/chat/completions", '{"model": "gem/x", "messages": %s}', "openai"),
    ("/v1/embeddings", '{"model": "gem/x", "input": %s}', "openai"),
    ("/v1/responses", '{"model": "gem/x", "input": "hi", "metadata": %s}', "openai"),
    ("/v1/messages", '{"model": "gem/x", "max_tokens": 5, "messages": [{"role": "user", '
     '"content": "hi"}], "metadata": {"user_id": %s}}', "anthropic"),
    ("/v1/messages/count_tokens", '{"model": "gem/x", "messages": %s}', "anthropic"),
])
def test_json_nested_5000_deep_is_a_400_in_every_dialect(
        gateway: GatewayProcess, path: str, template: str, shape: str) -> None:
    body = (template % nested(5000)).encode()
    status, _, answer = raw_exchange(gateway.port, (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
    assert status == 400, answer[:300]
    error = json.loads(answer)
    if shape == "anthropic":
        assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
        assert "the limit is 100" in error["error"]["message"]
    else:
        assert error["error"]["code"] == "json_too_deep"
    assert "Traceback" not in gateway.log()


def test_brackets_inside_strings_and_real_nesting_below_the_limit_pass(
        gateway: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    deep_schema: dict[str, Any] = {"type": "string"}
    for _ in range(40):  # 80 levels of JSON: deep, but a schema
        deep_schema = {"type": "object", "properties": {"x": deep_schema}}
    reply = client.chat.completions.create(
        model="gem/gemini-2.5-flash",
        messages=[{"role": "user", "content": "[" * 5000 + '\\"{' * 300}],
        tools=[{"type": "function", "function": {"name": "f", "parameters": deep_schema}}])
    assert reply.choices[0].message.content == "ok"


def test_client_request_id_is_kept_apart_from_the_ledger_id(keyed: GatewayProcess) -> None:
    key = new_key(keyed)
    client = openai.OpenAI(base_url=keyed.base_url, api_key=key, max_retries=0)
    ids = []
    for i in range(5):
        raw = client.chat.completions.with_raw_response.create(
            model="gem/gemini-2.5-flash", messages=USER,
            extra_headers={"x-request-id": "chosen-by-the-client"} if i < 4 else {
                "x-client-request-id": "other-id", "x-request-id": "ignored"})
        assert raw.headers["x-request-id"] not in ("chosen-by-the-client", "other-id")
        ids.append(raw.headers["x-request-id"])
        assert raw.headers["x-client-request-id"] == (
            "chosen-by-the-client" if i < 4 else "other-id")
    # Generated ids are 48 bits of milliseconds (so they sort by time) then 80 random-looking
    # bits: no counter to guess the next one from.
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids)
    assert ids == sorted(ids)
    assert len({rid[12:20] for rid in ids}) == len(ids)

    deadline, rows = time.monotonic() + 10, []
    while time.monotonic() < deadline and len(rows) < 5:
        with sqlite3.connect(keyed.db_path) as conn:
            rows = conn.execute("SELECT request_id, client_request_id FROM ledger "
                                "ORDER BY ts").fetchall()
        time.sleep(0.05)
    assert [r[0] for r in rows] == ids
    assert [r[1] for r in rows] == ["chosen-by-the-client"] * 4 + ["other-id"]


def test_an_unprintable_or_oversized_client_id_is_ignored(keyed: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=keyed.base_url, api_key=new_key(keyed), max_retries=0)
    for bad in ("x" * 129, "has space", "tab\there"):
        raw = client.chat.completions.with_raw_response.create(
            model="gem/gemini-2.5-flash", messages=USER, extra_headers={"x-request-id": bad})
        assert "x-client-request-id" not in raw.headers
        assert re.fullmatch(r"[0-9a-f]{32}", raw.headers["x-request-id"])


# -- 11. virtual keys never appear whole in logs --------------------------------------------------


def test_virtual_keys_never_reach_the_log_whole(keyed: GatewayProcess) -> None:
    """aiohttp logs the raw text of a request it cannot parse, headers included."""
    key = new_key(keyed)
    secret = key.split("-", 3)[3]
    attacks = [
        b"Authorization: Bearer " + key.encode() + b"\x01",  # a control byte in the value
        b"Authorization : Bearer " + key.encode(),  # a space before the colon
        b"x-api-key: " + key.encode() + b"\x00",
    ]
    for header in attacks:
        status, _, _ = raw_exchange(keyed.port, b"POST /v1/chat/completions HTTP/1.1\r\n"
                                    b"Host: 127.0.0.1\r\n" + header + b"\r\nContent-Length: 2"
                                    b"\r\nConnection: close\r\n\r\n{}")
        assert status == 400
    status, _, _ = raw_exchange(
        keyed.port, b"GET /v1/models?key=" + key.encode() + b" HTTP/1.1 junk\r\n\r\n")
    assert status == 400
    # A well-formed request whose key is refused: logged (if at all) by its id only.
    client = openai.OpenAI(base_url=keyed.base_url, api_key=key[:-1] + "A", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gem/x", messages=USER)
    time.sleep(0.3)
    log = keyed.log()
    assert "Error handling request" in log, "aiohttp logged the refusals (the attack surface)"
    assert secret[:12] not in log
    assert f"sk-pr-{key.split('-')[2]}-…" in log, "the key's public id is what is logged"
