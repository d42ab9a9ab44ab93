"""The response cache's pure parts: the key, Cache-Control, what may be stored, the byte-bounded
LRU, and a stored answer replayed as a stream and rebuilt from one."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from polyroute.cache.answer import Assembler, replay, storable
from polyroute.cache.control import parse
from polyroute.cache.key import cache_key, deterministic, tenant_of
from polyroute.cache.memory import MemoryStore
from polyroute.config import load_config
from polyroute.config.errors import ConfigError
from polyroute.model.chat import (
    ChatRequest,
    ChatResponse,
    Choice,
    FunctionCall,
    Message,
    ToolCall,
)
from polyroute.model.tools import ResponseFormat, Tool
from polyroute.model.usage import Usage

BASE = ChatRequest(messages=[Message("user", "hi")], model="m", temperature=0)


def _key(request: ChatRequest, group: str = "g", tenant: str = "org:a") -> str:
    return cache_key(request, group, tenant)


def test_key_covers_what_changes_the_answer_and_nothing_else() -> None:
    same = [
        msgspec.structs.replace(BASE, user="u-1"),
        msgspec.structs.replace(BASE, stream=True),
        msgspec.structs.replace(BASE, model="alias-of-the-same-group"),
        msgspec.structs.replace(BASE, passthrough={
            "metadata": msgspec.Raw(b'{"a":1}'), "user": msgspec.Raw(b'"x"'),
            "messages": msgspec.Raw(b"[]"), "store": msgspec.Raw(b"true")}),
    ]
    for request in same:
        assert _key(request) == _key(BASE)
    different = [
        msgspec.structs.replace(BASE, messages=[Message("user", "hi!")]),
        msgspec.structs.replace(BASE, temperature=0.0001),
        msgspec.structs.replace(BASE, top_p=0.5),
        msgspec.structs.replace(BASE, max_tokens=5),
        msgspec.structs.replace(BASE, n=2),
        msgspec.structs.replace(BASE, seed=1),
        msgspec.structs.replace(BASE, stop=["x"]),
        msgspec.structs.replace(BASE, tools=[Tool("function")]),
        msgspec.structs.replace(BASE, tool_choice="required"),
        msgspec.structs.replace(BASE, response_format=ResponseFormat("json_object")),
        msgspec.structs.replace(BASE, reasoning_effort="high"),
        msgspec.structs.replace(BASE, logprobs=True),  # modelled since the cascades' judge
        # A field polyroute relays without modelling it counts too.
        msgspec.structs.replace(BASE, passthrough={"top_logprobs": msgspec.Raw(b"3")}),
    ]
    keys = {_key(r) for r in different}
    assert len(keys) == len(different) and _key(BASE) not in keys
    assert _key(BASE, group="other") != _key(BASE)
    assert _key(BASE, tenant="org:b") != _key(BASE)


def test_tenants_fall_to_a_narrower_scope_never_to_a_shared_one() -> None:
    assert tenant_of("org", "k1", "t1", "o1") == "org:o1"
    assert tenant_of("org", "k1", "t1", None) == "team:t1"
    assert tenant_of("org", "k1", None, None) == "key:k1"
    assert tenant_of("team", "k1", "t1", "o1") == "team:t1"
    assert tenant_of("key", "k1", "t1", "o1") == "key:k1"
    assert tenant_of("global", "k1", "t1", "o1") == "*"
    assert tenant_of("org", None, None, None) == "anonymous"


def test_determinism() -> None:
    assert deterministic(BASE)
    assert not deterministic(msgspec.structs.replace(BASE, temperature=None))
    assert not deterministic(msgspec.structs.replace(BASE, temperature=0.2))


@pytest.mark.parametrize(("header", "expected"), [
    (None, (False, False, None)),
    ("no-store", (True, False, None)),
    ("No-Cache", (False, True, None)),
    ("max-age=60", (False, False, 60.0)),
    ("max-age=0", (False, True, 0.0)),
    ("max-age=abc, no-store", (True, False, None)),
    ('private, max-age="5"', (False, False, 5.0)),
])
def test_cache_control(header: str | None, expected: tuple[bool, bool, float | None]) -> None:
    control = parse(header)
    assert (control.no_store, control.no_cache, control.max_age_s) == expected
    assert parse(header, "on").opt_in and not control.opt_in


def _answer(finish: str = "stop", **message: object) -> ChatResponse:
    fields: dict[str, object] = {"content": "hello"}
    fields.update(message)
    return ChatResponse(id="c1", model="m", created=5,
                        choices=[Choice(0, Message("assistant", **fields), finish)],  # type: ignore[arg-type]
                        usage=Usage(3, 2, 5))


def test_only_whole_answers_are_storable() -> None:
    assert storable(_answer())
    assert storable(_answer("tool_calls", content=None, tool_calls=[
        ToolCall(id="t", type="function", function=FunctionCall("f", "{}"))]))
    assert not storable(_answer("length"))
    assert not storable(_answer("content_filter"))
    assert not storable(_answer(refusal="I can't help with that."))
    assert not storable(_answer(content=""))
    assert not storable(msgspec.structs.replace(_answer(), usage=None))
    assert not storable(ChatResponse())


def test_replay_and_assembly_round_trip() -> None:
    calls = [ToolCall(id="t1", type="function", function=FunctionCall("f", '{"a": 1}')),
             ToolCall(id="t2", type="function", function=FunctionCall("g", "{}"))]
    stored = _answer("tool_calls", content="thinking aloud", tool_calls=calls,
                     reasoning_content="because")
    chunks = replay(stored)
    assert chunks[-1].usage == stored.usage and not chunks[-1].choices
    rebuilt = Assembler()
    rebuilt.feed(chunks)
    again = rebuilt.response()
    assert again.choices == stored.choices
    assert (again.id, again.model, again.created, again.usage) == ("c1", "m", 5, stored.usage)


def test_assembly_of_fragmented_stream() -> None:
    from polyroute.model.chat import ChatChunk, ChunkChoice, Delta
    parts = [
        ChatChunk(id="x", choices=[ChunkChoice(0, Delta(role="assistant", content="Hel"))]),
        ChatChunk(id="x", choices=[ChunkChoice(0, Delta(content="lo"))]),
        ChatChunk(id="x", choices=[ChunkChoice(0, Delta(tool_calls=[ToolCall(
            index=0, id="c", type="function", function=FunctionCall("f", '{"a"'))]))]),
        ChatChunk(id="x", choices=[ChunkChoice(0, Delta(tool_calls=[ToolCall(
            index=0, function=FunctionCall(arguments=': 1}'))]))]),
        ChatChunk(id="x", choices=[ChunkChoice(0, Delta(), "tool_calls")]),
        ChatChunk(id="x", usage=Usage(1, 2, 3)),
    ]
    built = Assembler()
    built.feed(parts)
    answer = built.response()
    message = answer.choices[0].message
    assert message.content == "Hello"
    assert message.tool_calls == [ToolCall(id="c", type="function",
                                           function=FunctionCall("f", '{"a": 1}'))]
    assert answer.choices[0].finish_reason == "tool_calls" and answer.usage == Usage(1, 2, 3)
    assert storable(answer)


async def test_memory_store_is_bounded_in_bytes_and_expires() -> None:
    now = [0.0]
    store = MemoryStore(max_bytes=3 * (1000 + 200 + 2), clock=lambda: now[0])
    for name in ("k1", "k2", "k3"):
        await store.put(name, b"x" * 1000, ttl_s=10)
    assert await store.get("k1") is not None  # k1 is now the most recently used
    await store.put("k4", b"y" * 1000, ttl_s=10)
    assert await store.get("k2") is None, "the least recently used goes first"
    assert await store.get("k1") is not None and await store.get("k4") is not None
    assert store.stored_bytes() <= 3 * 1202
    await store.put("huge", b"z" * 10_000, ttl_s=10)
    assert await store.get("huge") is None and len(store) == 3
    now[0] = 11
    assert await store.get("k1") is None
    assert store.stored_bytes() == 2 * 1202


def test_config_reads_an_unquoted_off_as_off(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("cache: {mode: deterministic}\n"
                    "providers: {p: {base_url: 'http://127.0.0.1:1/v1', auth: none}}\n"
                    "model_groups: {a: {cache: off, deployments: [{provider: p, model: m}]},\n"
                    "               b: {deployments: [{provider: p, model: m}]}}\n")
    config = load_config(str(path))
    assert config.cache.mode == "deterministic"
    assert config.groups["a"].cache == "off" and config.groups["b"].cache is None
    path.write_text("cache: {mode: on}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert "cache.mode" in str(caught.value)
