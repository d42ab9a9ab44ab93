"""The MCP gateway (issue 16 item 6), end to end: a real ``polyroute serve`` fronting FastMCP
servers (one over streamable HTTP on loopback, one over stdio that polyroute starts), with
the official ``mcp`` SDK as the client of ``/mcp`` and the ``openai`` SDK for chat requests
that use MCP tools against the simulator. Allow-lists per key and team, ledger rows, audit
entries and circuits that open on a hanging or dead server."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

from tests.support.gateway import GatewayProcess, free_port
from tests.support.policy import MASTER_KEY, admin, new_key, ok
from tests.support.sim import SimServer

SERVER = str(Path(__file__).parent / "support" / "mcp_server.py")
SIM_KEY = "sk-mcp-upstream-41"


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    """The streamable HTTP server (FastMCP), on its own loopback port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, SERVER, "http", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "no MCP server"
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=SIM_KEY, text="The sum is in.") as server:
        yield server


@pytest.fixture(scope="module")
def gw(upstream: int, sim: SimServer) -> Iterator[GatewayProcess]:
    url = f"http://127.0.0.1:{upstream}/mcp"
    config = {
        "providers": {"sim": {"base_url": sim.base_url, "api_key": "${SIM_KEY}"}},
        "model_groups": {"chat": {"deployments": [{"provider": "sim", "model": "gpt-4o"}]}},
        "auth": {"master_key": "${PR_MASTER}", "refresh_s": 0.2},
        "storage": {"flush_interval_s": 0.05},
        "mcp": {"servers": {
            "web": {"url": url},
            # (a generous start-up time: the machine running the tests may be busy)
            "local": {"command": [sys.executable, SERVER, "stdio"], "connect_timeout_s": 60},
            # the same server again, with a short timeout and a circuit that opens fast
            "slow": {"url": url, "timeout_s": 0.3,
                     "circuit": {"failures": 2, "request_volume": 2, "cooldown_s": 60}},
            "dead": {"command": [sys.executable, "-c", "import sys; sys.exit(3)"],
                     "connect_timeout_s": 5,
                     "circuit": {"failures": 1, "request_volume": 1, "cooldown_s": 60}},
        }},
    }
    with GatewayProcess(config, {"PR_MASTER": MASTER_KEY, "SIM_KEY": SIM_KEY}) as gateway:
        yield gateway


async def _session(gw: GatewayProcess, key: str, work: Any) -> Any:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"},
                                 timeout=30) as http, \
            streamable_http_client(f"{gw.root_url}/mcp", http_client=http) as (r, w, _), \
            ClientSession(r, w) as session:
        await session.initialize()
        return await work(session)


def mcp(gw: GatewayProcess, key: str, work: Any) -> Any:
    """``work(session)``'s result through the official client; an error it raised comes out
    as itself, not wrapped in the SDK's task groups' exception groups."""
    try:
        return asyncio.run(_session(gw, key, work))
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        raise leaf from None


async def _names(session: ClientSession) -> set[str]:
    return {t.name for t in (await session.list_tools()).tools}


def _text(result: Any) -> str:
    return "".join(part.text for part in result.content if part.type == "text")


def _call(name: str, arguments: dict[str, Any] | None = None) -> Any:
    async def work(session: ClientSession) -> Any:
        return await session.call_tool(name, arguments or {})
    return work


def _refusal(gw: GatewayProcess, key: str, name: str,
             arguments: dict[str, Any] | None = None) -> str:
    with pytest.raises(McpError) as caught:
        mcp(gw, key, _call(name, arguments))
    return caught.value.error.message


def ledger(gw: GatewayProcess, where: str, *args: Any, count: int = 1) -> list[sqlite3.Row]:
    """Ledger rows (the spool is flushed in the background: wait for ``count`` of them)."""
    deadline = time.monotonic() + 20
    while True:
        with sqlite3.connect(gw.db_path) as db:
            db.row_factory = sqlite3.Row
            try:
                rows = db.execute(f"SELECT * FROM ledger WHERE {where} ORDER BY ts",
                                  args).fetchall()
            except sqlite3.OperationalError:
                rows = []
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_tools_of_every_server_are_listed_namespaced_and_called(gw: GatewayProcess) -> None:
    # ('slow' is left to its own test: a listing that timed out would count against it)
    key = new_key(gw, mcp_servers=["web", "local", "dead"])

    async def work(session: ClientSession) -> tuple[set[str], Any, Any]:
        names = await _names(session)
        return (names, await session.call_tool("web__add", {"a": 2, "b": 40}),
                await session.call_tool("local__echo", {"text": "hi"}))

    names, added, echoed = mcp(gw, key, work)
    expected = {"add", "echo", "secret", "pause", "pid", "history"}
    assert {f"web__{t}" for t in expected} <= names
    assert {f"local__{t}" for t in expected} <= names  # the stdio server polyroute started
    assert not any(n.startswith("dead__") for n in names)  # it cannot start: left out
    assert _text(added) == "42" and not added.isError
    assert _text(echoed) == "stdio: hi"  # answered by the stdio process, not the HTTP one
    rows = ledger(gw, "endpoint = 'mcp' AND key_id = ?", key.split("-")[2], count=2)
    assert [(r["deployment"], r["upstream_model"], r["status"]) for r in rows] == [
        ("web", "add", 200), ("local", "echo", 200)]
    assert all(r["requested_model"] == f"{r['deployment']}__{r['upstream_model']}"
               and r["latency_ms"] > 0 and r["cost_usd"] == 0 for r in rows)
    # Every tool call is in the audit log too, not only refusals.
    actor = f"key:{key.split('-')[2]}"
    deadline = time.monotonic() + 20
    while True:
        calls = [e for e in ok(admin(gw, "GET", "/admin/audit?outcome=ok"))["data"]
                 if e["actor"] == actor]
        if len(calls) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert sorted((e["action"], e["target"]) for e in calls) == [
        ("mcp tool call", "local__echo"), ("mcp tool call", "web__add")]


def test_tool_calls_count_against_the_keys_request_rate(gw: GatewayProcess) -> None:
    key = new_key(gw, mcp_servers=["web"], rpm=2, models=["chat"])  # no model names 'web'

    async def three(session: ClientSession) -> list[Any]:
        results: list[Any] = []
        for n in range(3):
            try:
                results.append(await session.call_tool("web__add", {"a": n, "b": 1}))
            except McpError as exc:
                results.append(exc.error.message)
        return results

    first, second, third = mcp(gw, key, three)
    assert _text(first) == "1" and _text(second) == "2"  # a model allow-list does not apply
    assert isinstance(third, str) and "rate limit" in third.lower(), third
    rows = ledger(gw, "endpoint = 'mcp' AND key_id = ?", key.split("-")[2], count=3)
    assert [r["status"] for r in rows] == [200, 200, 429]
    assert all(r["cost_usd"] == 0 for r in rows)


def test_allow_lists_of_the_key_and_its_team_both_apply(gw: GatewayProcess) -> None:
    ok(admin(gw, "POST", "/admin/teams", {"id": "web-only", "mcp_servers": ["web"]}))
    key = new_key(gw, team="web-only", mcp_tools=["web__add", "web__history", "local__echo"])
    assert mcp(gw, key, _names) == {"web__add", "web__history"}  # local: not the team's
    assert "may not use the MCP tool 'web__secret'" in _refusal(gw, key, "web__secret")
    assert "may not use the MCP tool 'local__echo'" in _refusal(gw, key, "local__echo",
                                                                {"text": "x"})
    assert "No MCP server offers the tool 'nowhere__x'" in _refusal(gw, key, "nowhere__x")
    # refused before reaching the upstream server: it never ran 'secret'
    history = mcp(gw, key, _call("web__history"))
    assert "secret" not in _text(history).split(",")
    # A wildcard lets every tool of one server by.
    wide = new_key(gw, mcp_tools=["local__*"])
    assert mcp(gw, wide, _names) == {f"local__{t}" for t in
                                     ("add", "echo", "secret", "pause", "pid", "history")}
    # Refusals are in the ledger (403) and the audit log.
    key_id = key.split("-")[2]
    rows = ledger(gw, "endpoint = 'mcp' AND key_id = ? AND status = 403", key_id, count=2)
    assert {r["requested_model"] for r in rows} == {"web__secret", "local__echo"}
    deadline = time.monotonic() + 20
    while True:
        entries = [e for e in ok(admin(gw, "GET", "/admin/audit?outcome=refused"))["data"]
                   if e["actor"] == f"key:{key_id}"]
        if len(entries) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert {e["target"] for e in entries} == {"web__secret", "local__echo"}
    assert {e["action"] for e in entries} == {"request permission_denied"}
    assert all(e["detail"]["team"] == "web-only" for e in entries)


def test_allow_lists_are_set_and_changed_like_other_key_settings(gw: GatewayProcess) -> None:
    key = new_key(gw, mcp_servers=["local"])
    key_id = key.split("-")[2]
    assert ok(admin(gw, "GET", f"/admin/keys/{key_id}"))["mcp_servers"] == ["local"]
    assert all(n.startswith("local__") for n in mcp(gw, key, _names))
    ok(admin(gw, "PATCH", f"/admin/keys/{key_id}", {"mcp_servers": ["web"]}))
    deadline = time.monotonic() + 10
    while not all(n.startswith("web__") for n in mcp(gw, key, _names)):
        assert time.monotonic() < deadline, "the change was not picked up"
        time.sleep(0.2)
    status, body = admin(gw, "POST", "/admin/keys", {"mcp_servers": ["bad__name"]})
    assert status == 400 and "mcp_servers" in body["error"]["message"]


def test_without_a_valid_key_mcp_answers_401(gw: GatewayProcess) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    request = urllib.request.Request(f"{gw.root_url}/mcp", data=body, method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
        "Authorization": "Bearer sk-pr-0000000000000000-" + "x" * 43})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 401
    answer = json.loads(caught.value.read())
    assert answer["error"]["code"] == -32001 and "Invalid API key" in answer["error"]["message"]


def _post(gw: GatewayProcess, key: str, message: Any, method: str = "POST") -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{gw.root_url}/mcp", method=method,
        data=None if message is None else json.dumps(message).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}",
                 "Accept": "application/json, text/event-stream"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_what_mcp_does_not_serve_is_a_clear_answer(gw: GatewayProcess) -> None:
    key = new_key(gw)
    status, body = _post(gw, key, {"jsonrpc": "2.0", "id": 7, "method": "resources/list"})
    assert status == 200 and body["id"] == 7 and body["error"]["code"] == -32601
    assert _post(gw, key, {"jsonrpc": "2.0", "method": "notifications/initialized"}) == (
        202, None)
    assert _post(gw, key, None, method="GET")[0] == 405
    status, body = _post(gw, key, {"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                                   "params": {"arguments": {}}})
    assert body["error"]["code"] == -32602 and "name" in body["error"]["message"]
    status, body = _post(gw, key, {"jsonrpc": "2.0", "id": 9, "method": "initialize",
                                   "params": {"protocolVersion": "2025-03-26"}})
    assert body["result"]["protocolVersion"] == "2025-03-26"
    assert body["result"]["capabilities"] == {"tools": {"listChanged": False}}


def test_a_hanging_server_times_out_then_its_circuit_opens(gw: GatewayProcess) -> None:
    key = new_key(gw)
    for _ in range(2):  # 0.3 s timeout each; two failures open the circuit
        assert "did not answer" in _refusal(gw, key, "slow__pause", {"seconds": 5})
    started = time.monotonic()
    message = _refusal(gw, key, "slow__pause", {"seconds": 0})
    assert "circuit is open" in message and time.monotonic() - started < 5
    names = mcp(gw, key, _names)
    assert "web__pause" in names and not any(n.startswith("slow__") for n in names)
    rows = ledger(gw, "deployment = 'slow' AND key_id = ?", key.split("-")[2], count=3)
    assert [r["error_class"] for r in rows] == [
        "upstream_timeout", "upstream_timeout", "circuit_open"]
    metrics = gw.get("/metrics")[1].decode()
    assert 'polyroute_circuit_state{upstream="mcp:slow"} 2.0' in metrics
    assert 'polyroute_mcp_tool_calls_total{outcome="ok",server="web",tool="add"}' in metrics


def test_a_stdio_server_that_dies_opens_its_circuit(gw: GatewayProcess) -> None:
    """Its process exits at once: the first listing fails (one failure opens this circuit),
    so its tools are never listed and a call is refused at once, naming the circuit."""
    key = new_key(gw)
    assert not any(n.startswith("dead__") for n in mcp(gw, key, _names))
    assert "MCP server dead left out of the tool list: MCP server 'dead'" in gw.log()
    message = _refusal(gw, key, "dead__anything")
    assert "MCP server 'dead' is unavailable: its circuit is open" in message
    metrics = gw.get("/metrics")[1].decode()
    assert 'polyroute_circuit_state{upstream="mcp:dead"} 2.0' in metrics


def test_a_chat_request_runs_mcp_tools_until_the_model_answers(
        gw: GatewayProcess, sim: SimServer) -> None:
    """The simulator calls the one tool offered (tool_choice: required); the gateway runs it
    on the MCP server, sends the result back, and the model answers (the choice is reset to
    auto after a tool round). Both model calls are billed; the tool call is recorded."""
    key = new_key(gw)
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    answer = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "What is 2 + 3?"}],
        tools=[{"type": "mcp", "server_label": "local", "allowed_tools": ["add"]}],  # type: ignore[list-item]
        tool_choice="required")
    assert answer.choices[0].message.content == "The sum is in."
    assert not answer.choices[0].message.tool_calls
    rows = ledger(gw, "key_id = ?", key.split("-")[2], count=3)
    assert [r["endpoint"] for r in rows] == ["chat", "mcp", "chat"]
    assert len({r["request_id"] for r in rows}) == 1  # one client request, three records
    assert rows[1]["requested_model"] == "local__add" and rows[1]["status"] == 200
    assert all(r["cost_usd"] > 0 for r in (rows[0], rows[2]))  # every model call is billed
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == rows[0]["prompt_tokens"] + rows[2]["prompt_tokens"]
    # The second model call saw the tool's result.
    history = mcp(gw, key, _call("local__history"))
    assert "add" in _text(history).split(",")


def test_a_streamed_chat_request_with_mcp_tools_streams_the_final_answer(
        gw: GatewayProcess) -> None:
    key = new_key(gw, mcp_tools=["web__echo"])
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    stream = client.chat.completions.create(
        model="chat", stream=True, messages=[{"role": "user", "content": "Echo hi"}],
        tools=[{"type": "mcp", "server_label": "web"}],  # type: ignore[list-item]
        tool_choice="required")
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "The sum is in."
    rows = ledger(gw, "key_id = ? AND endpoint = 'mcp'", key.split("-")[2])
    assert [r["requested_model"] for r in rows] == ["web__echo"]  # the only tool allowed


def test_a_chat_request_naming_an_unknown_or_forbidden_server_is_refused(
        gw: GatewayProcess) -> None:
    key = new_key(gw, mcp_servers=["web"])
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="chat", messages=messages,  # type: ignore[arg-type]
                                       tools=[{"type": "mcp", "server_label": "nope"}])  # type: ignore[list-item]
    assert "server_label must name an MCP server" in bad.value.message
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(model="chat", messages=messages,  # type: ignore[arg-type]
                                       tools=[{"type": "mcp", "server_label": "local"}])  # type: ignore[list-item]
    assert "may not use the MCP server 'local'" in denied.value.message
    rows = ledger(gw, "key_id = ? AND status = 403", key.split("-")[2])
    assert [(r["endpoint"], r["error_class"]) for r in rows] == [("chat", "permission_denied")]
