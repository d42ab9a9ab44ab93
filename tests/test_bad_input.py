"""Bad input gets an OpenAI-shaped error with the right status, and the process stays healthy."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import aiohttp
import pytest

from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

URL = "/v1/chat/completions"


async def post(gateway: GatewayProcess, body: bytes) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.post(
        gateway.root_url + URL, data=body, headers={"Content-Type": "application/json"}
    ) as response:
        return response.status, json.loads(await response.read())


def assert_openai_error(payload: dict[str, object], param: str | None = None) -> dict[str, object]:
    error = payload["error"]
    assert isinstance(error, dict)
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if param is not None:
        assert error["param"] == param
    return error


@pytest.fixture(autouse=True)
def still_healthy(gateway: GatewayProcess):  # type: ignore[no-untyped-def]
    yield
    assert gateway.get("/healthz")[0] == 200
    assert "Traceback" not in gateway.log()


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b'{"model": "chat", "messages": [', 400, None),
        (b"[1, 2, 3]", 400, None),
        (b"", 400, None),
        (b'{"model": "chat", "messages": [{"role": "user", "content": 5}]}', 400,
         "messages[0].content"),
        (b'{"model": "chat", "messages": "hello"}', 400, "messages"),
        (b'{"model": 7, "messages": []}', 400, "model"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', 400, "model"),
        (b'{"model": "chat", "messages": []}', 400, "messages"),
        (b'{"model": "chat", "messages": [{"role": "user", "content": "hi"}], '
         b'"stream": "yes"}', 400, "stream"),
        (b'{"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}', 404,
         "model"),
        (b'{"model": "nowhere/gpt", "messages": [{"role": "user", "content": "hi"}]}', 404,
         "model"),
    ],
)
async def test_malformed_requests(
    gateway: GatewayProcess, body: bytes, status: int, param: str | None
) -> None:
    got, payload = await post(gateway, body)
    assert got == status, payload
    error = assert_openai_error(payload, param)
    assert error["type"] == "invalid_request_error"
    if status == 404:
        assert error["code"] == "model_not_found"
        assert "chat" in str(error["message"])  # says what does exist


async def test_body_over_the_limit(gateway: GatewayProcess) -> None:
    big = b'{"model": "chat", "messages": [{"role": "user", "content": "' + b"x" * 300_000
    got, payload = await post(gateway, big + b'"}]}')
    assert got == 413
    assert_openai_error(payload)


async def test_chunked_body_over_the_limit(gateway: GatewayProcess) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"model": "chat", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"y" * 10_000
        yield b'"}]}'

    async with aiohttp.ClientSession() as session, session.post(
        gateway.root_url + URL, data=chunks()) as response:
        assert response.status == 413
        assert_openai_error(json.loads(await response.read()))


async def test_wrong_method_and_unknown_path(gateway: GatewayProcess) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(gateway.root_url + URL) as response:
            assert response.status == 405
            assert_openai_error(json.loads(await response.read()))
        async with session.post(gateway.root_url + "/v1/nothing", data=b"{}") as response:
            assert response.status == 404
            assert_openai_error(json.loads(await response.read()))


def test_slow_client_gets_408(gateway: GatewayProcess) -> None:
    """A client that never finishes its body is cut off after server.body_timeout_s (1 s)."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mo")
        started = time.monotonic()
        reply = sock.recv(65536)
        assert time.monotonic() - started < 5
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert_openai_error(json.loads(body))


async def test_client_disconnect_cancels_the_upstream(
    gateway: GatewayProcess, sim: SimServer
) -> None:
    sim.reset()
    body = json.dumps({"model": "sim/gpt-4o-mini@stream_stall:after_chunks=2;hold_s=20",
                       "messages": [{"role": "user", "content": "hi"}], "stream": True})
    async with aiohttp.ClientSession() as session:
        response = await session.post(gateway.root_url + URL, data=body)
        assert response.status == 200
        first = await response.content.readuntil(b"\n\n")
        assert first.startswith(b"data: ")
        response.close()  # the client walks away mid-answer
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        stats = sim.stats()
        if stats["streams_aborted_by_peer"] >= 1 and stats["active_requests"] == 0:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"the upstream stream was not cancelled: {sim.stats()}")
