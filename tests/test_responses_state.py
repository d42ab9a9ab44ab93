"""Stateful Responses: ``store: true`` and ``previous_response_id`` kept by polyroute, so a
conversation begun on an Anthropic deployment goes on on a Gemini one; ``GET`` and ``DELETE
/v1/responses/{id}``; another key's id is 404; on SQLite and on PostgreSQL. Through the
official openai SDK, whose typed objects validate every answer."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.responses import Response

from polyroute.engine.conversations import Conversations, new_response_id
from polyroute.errors import NotFound
from polyroute.model.chat import Message
from polyroute.storage.objects import ResponseStore
from polyroute.storage.sqlite import SqliteDatabase
from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, new_key
from tests.support.postgres import scratch_database
from tests.support.sim import SimServer


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=SIM_KEY) as server:
        yield server


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(request: pytest.FixtureRequest, sim: SimServer) -> Iterator[GatewayProcess]:
    def config(storage: dict[str, Any]) -> dict[str, Any]:
        return {
            "providers": {
                "claude": {"protocol": "anthropic", "base_url": sim.root_url,
                           "api_key": "${SIM_KEY}"},
                "gemini": {"protocol": "gemini", "base_url": sim.root_url,
                           "api_key": "${SIM_KEY}"},
            },
            "model_groups": {
                "claude": {"deployments": [{"provider": "claude", "model": "echo-claude"}]},
                "gemini": {"deployments": [{"provider": "gemini", "model": "echo-gemini"}]},
            },
            "auth": {"master_key": "${PR_MASTER}"},
            "storage": storage,
        }

    env = {"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}
    if request.param == "postgres":
        with scratch_database("responses") as url, \
                GatewayProcess(config({"postgres_url": url}), env=env) as gateway:
            yield gateway
    else:
        with GatewayProcess(config({}), env=env) as gateway:
            yield gateway


def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=new_key(gw), max_retries=0)


def last_request(sim: SimServer) -> tuple[str, Any]:
    last = sim.stats()["last_request"]
    return last["path"], json.loads(base64.b64decode(last["body_base64"]))


def test_a_conversation_begun_on_anthropic_goes_on_on_gemini(
        gw: GatewayProcess, sim: SimServer) -> None:
    alice = client(gw)
    first = alice.responses.create(model="claude", instructions="Be brief.",
                                   input="My name is Ada.", store=True)
    assert isinstance(first, Response) and first.id.startswith("resp_pr")
    assert first.output_text == "My name is Ada."
    second = alice.responses.create(model="gemini", previous_response_id=first.id,
                                    input="What is my name?")
    path, body = last_request(sim)
    assert path.endswith("echo-gemini:generateContent")
    turns = [(c["role"], "".join(p.get("text", "") for p in c["parts"]))
             for c in body["contents"]]
    assert turns == [("user", "My name is Ada."), ("model", "My name is Ada."),
                     ("user", "What is my name?")]
    assert "systemInstruction" not in body  # instructions are not carried over, as OpenAI
    assert second.previous_response_id == first.id and second.id.startswith("resp_pr")
    # Streamed, back on Anthropic, continued the moment the stream ends.
    events = list(alice.responses.create(model="claude", previous_response_id=second.id,
                                         input="Thanks.", stream=True))
    completed = [e for e in events if e.type == "response.completed"]
    assert len(completed) == 1
    third = completed[0].response
    assert third.id.startswith("resp_pr") and third.output_text == "Thanks."
    alice.responses.create(model="gemini", previous_response_id=third.id, input="Bye.")
    _, body = last_request(sim)
    assert [c["role"] for c in body["contents"]] == ["user", "model"] * 3 + ["user"]
    fetched = alice.responses.retrieve(second.id)
    assert fetched.id == second.id and fetched.output_text == second.output_text
    assert alice.responses.retrieve(third.id).output_text == "Thanks."


def test_another_key_gets_404_and_delete_forgets(gw: GatewayProcess) -> None:
    alice, bob = client(gw), client(gw)
    kept = alice.responses.create(model="claude", input="A secret.", store=True)
    with pytest.raises(openai.NotFoundError):
        bob.responses.retrieve(kept.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.create(model="gemini", previous_response_id=kept.id, input="Tell me.")
    with pytest.raises(openai.NotFoundError):
        bob.responses.delete(kept.id)
    assert alice.responses.retrieve(kept.id).id == kept.id
    alice.responses.delete(kept.id)
    with pytest.raises(openai.NotFoundError):
        alice.responses.retrieve(kept.id)
    with pytest.raises(openai.NotFoundError):
        alice.responses.create(model="gemini", previous_response_id=kept.id, input="Again.")
    unstored = alice.responses.create(model="claude", input="Not kept.")
    with pytest.raises(openai.NotFoundError):
        alice.responses.retrieve(unstored.id)
    with pytest.raises(openai.NotFoundError):  # not polyroute's: nothing upstream to ask
        alice.responses.retrieve("resp_elsewhere")


def test_retention_ends_a_conversation(tmp_path: Path) -> None:
    async def run() -> None:
        db = SqliteDatabase(str(tmp_path / "r.db"))
        await db.start()
        now = [1000.0]
        conversations = Conversations(ResponseStore(db), retention_s=60, clock=lambda: now[0])
        rid = new_response_id()
        turn = [Message(role="user", content="hi"), Message(role="assistant", content="hello")]
        conversations.keep(rid, "k1", turn, b'{"id": "x"}')
        assert await conversations.history(rid, "k1") == turn
        with pytest.raises(NotFound):
            await conversations.history(rid, "k2")
        now[0] += 61
        with pytest.raises(NotFound):
            await conversations.history(rid, "k1")
        later = new_response_id()
        conversations.keep(later, "k1", turn, b"{}")  # and purges what expired
        assert await conversations.history(later, "k1") == turn
        assert await db.fetch("SELECT id FROM stored_responses WHERE id = ?", rid) == []
        await db.close()

    asyncio.run(run())


WEATHER = {"type": "function", "name": "get_weather", "description": "Weather at a place.",
           "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                          "required": ["location"]}}


def test_a_tool_call_made_on_anthropic_is_answered_on_gemini(
        gw: GatewayProcess, sim: SimServer) -> None:
    alice = client(gw)
    first = alice.responses.create(
        model="claude", input="Weather in Paris?", tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"}, store=True)
    [call] = [item for item in first.output if item.type == "function_call"]
    alice.responses.create(
        model="gemini", previous_response_id=first.id, tools=[WEATHER],  # type: ignore[list-item]
        input=[{"type": "function_call_output", "call_id": call.call_id,
                "output": "sunny, 21 C"}])
    _, body = last_request(sim)
    parts = [(c["role"], sorted(c["parts"][0])) for c in body["contents"]]
    assert [role for role, _ in parts] == ["user", "model", "user"]
    assert "functionCall" in parts[1][1] and "functionResponse" in parts[2][1]
    assert body["contents"][1]["parts"][0]["functionCall"]["name"] == "get_weather"
    assert body["contents"][2]["parts"][0]["functionResponse"]["response"] is not None
