"""The guardrail hook interface on its own (issue 11, item 2): streamed answers checked window
by window or held until checked, redaction across chunks, fail open and closed for built-in
hooks, per-scope selection, the guard inside ``LiveStream`` (refused before anything was
released, or mid-stream; settled once), and the detectors' prefilter finding what a scan of
the whole text finds."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from polyroute.engine.guardrails import (
    OFFLOAD_CHARS,
    Check,
    Guardrails,
    Hook,
    StreamGuard,
    _run,
    detectors,
    max_chars,
)
from polyroute.engine.streaming import LiveStream, open_stream
from polyroute.errors import PolicyViolation, ServiceUnavailable
from polyroute.guardrails import detectors as detector_module
from polyroute.guardrails.detectors import CLASSES, detect
from polyroute.model.chat import (
    ChatChunk,
    ChatRequest,
    ChunkChoice,
    Delta,
    FunctionCall,
    Message,
    ToolCall,
)
from polyroute.model.governance import DataPolicy
from polyroute.model.record import RequestRecord
from polyroute.model.usage import Usage

CORPUS = Path(__file__).resolve().parent.parent / "bench" / "guardrails" / "corpus.jsonl"
REQUEST = ChatRequest(model="m", messages=[Message(role="user", content="hi")])


def chunk(text: str | None = None, finish: str | None = None) -> ChatChunk:
    return ChatChunk(id="c", model="m", raw=b"upstream bytes",
                     choices=[ChunkChoice(0, Delta(content=text), finish)])


def text_of(batches: list[list[ChatChunk]]) -> str:
    return "".join(c.choices[0].delta.content or "" for b in batches for c in b if c.choices)


class Recorder:
    """A hook that records what it was asked and refuses text holding 'bad'."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, stage: str, model: str, text: str, request: ChatRequest
                      ) -> str | None:
        self.asked.append(text)
        return "it is bad" if "bad" in text else None


def hook(check: Check, stream: str = "incremental", window: int = 16,
         fail_open: bool = False, name: str = "h") -> Hook:
    return Hook(name, check, frozenset({"response"}), 1.0, fail_open, stream, window)


def record() -> RequestRecord:
    return RequestRecord("r", 0, "chat", "m")


async def test_incremental_releases_only_what_was_checked() -> None:
    check = Recorder()
    guard = StreamGuard([hook(check)], REQUEST, "g", record())
    assert await guard.feed([chunk("one two ")]) == []  # under the window: held, unchecked
    released = await guard.feed([chunk("three four five ")])
    assert text_of(released) == "one two three four five " and check.asked == [
        "one two three four five "]
    with pytest.raises(PolicyViolation, match="'h' \\(response\\): it is bad"):
        await guard.feed([chunk("six b"), chunk("ad seven eight nine")])
    # the window overlaps the end of the one before: a word split between them is seen whole
    assert check.asked[-1].startswith("one two three")


async def test_a_finish_reason_checks_what_is_left() -> None:
    check = Recorder()
    guard = StreamGuard([hook(check, window=1000)], REQUEST, "g", record())
    assert await guard.feed([chunk("short")]) == []
    assert text_of(await guard.feed([chunk(" end", finish="stop")])) == "short end"
    assert check.asked == ["short end"]


async def test_hold_releases_at_the_end_and_redacts_across_chunks() -> None:
    rec = record()
    guard = StreamGuard([hook(detectors(CLASSES["pii"], "redact"), stream="hold")], REQUEST,
                        "g", rec)
    pieces = ["Mail jane", ".doe@exam", "ple.org or card 4111 1111 ", "1111 1111 now."]
    for piece in pieces:
        assert await guard.feed([chunk(piece)]) == []
    released = await guard.end()
    assert text_of(released) == "Mail [EMAIL_1] or card [CARD_1] now."
    changed = [c for b in released for c in b if c.choices[0].delta.content]
    assert len(changed) == 1 and changed[0].raw is None  # the surface encodes it
    assert "redacted card=1 email=1" in (rec.governance or "")


async def test_hold_refuses_the_whole_answer() -> None:
    guard = StreamGuard([hook(max_chars(10), stream="hold")], REQUEST, "g", record())
    await guard.feed([chunk("0123456789")])
    await guard.feed([chunk("X")])
    with pytest.raises(PolicyViolation, match="11 characters, more than 10"):
        await guard.end()


async def test_a_broken_hook_fails_open_or_closed() -> None:
    async def broken(stage: str, model: str, text: str, request: ChatRequest) -> None:
        raise RuntimeError("detector bug")

    rec = record()
    guard = StreamGuard([hook(broken, fail_open=True, name="o")], REQUEST, "g", rec)
    assert text_of(await guard.feed([chunk("x" * 20)])) == "x" * 20
    assert "guardrail:o:failed-open" in (rec.governance or "")
    guard = StreamGuard([hook(broken, name="c")], REQUEST, "g", record())
    with pytest.raises(ServiceUnavailable, match="'c' could not check the response"):
        await guard.feed([chunk("x" * 20)])


async def test_guardrails_per_scope() -> None:
    everyone = hook(Recorder(), name="everyone")
    scoped = Hook("scoped", Recorder(), frozenset({"response"}), 1.0, False, scoped=True)
    rails = Guardrails([everyone, scoped])
    assert rails.everyone
    plain = rails.select(())
    assert plain is not None and [h.name for h in plain.answers] == ["everyone"]
    named = rails.select((("t:red", DataPolicy(guardrails=["scoped"])),
                          ("o:acme", DataPolicy(answer_data_classes={"pii": "redact",
                                                                      "secrets": "refuse"}))))
    assert named is not None and [h.name for h in named.answers] == [
        "everyone", "scoped", "o:acme/answer_data_classes", "o:acme/answer_data_classes"]
    with pytest.raises(ServiceUnavailable, match="team 'red' names the guardrail 'nope'"):
        rails.select((("t:red", DataPolicy(guardrails=["nope"])),))
    assert Guardrails([]).select(()) is None and not Guardrails([]).everyone


def call(arguments: str, index: int = 0, name: str | None = None) -> ChatChunk:
    tool = ToolCall(index=index, function=FunctionCall(name=name, arguments=arguments))
    return ChatChunk(id="c", model="m", native=b"upstream event",
                     choices=[ChunkChoice(0, Delta(tool_calls=[tool]))])


def arguments_of(batches: list[list[ChatChunk]], index: int) -> str:
    return "".join(t.function.arguments or "" for b in batches for c in b for ch in c.choices
                   for t in ch.delta.tool_calls or () if t.index == index and t.function)


async def test_tool_call_arguments_are_checked_apart_as_they_stream() -> None:
    check = Recorder()
    guard = StreamGuard([hook(check)], REQUEST, "g", record())
    released = await guard.feed([chunk("fine text "), call('{"a": "one two three', 0, "f"),
                                 call('{"b": "four', 1, "g")])
    assert arguments_of(released, 0) == '{"a": "one two three'
    assert sorted(check.asked) == sorted(['{"a": "one two three', "fine text ",
                                          '{"b": "four'])  # each part its own window
    with pytest.raises(PolicyViolation, match="it is bad"):
        await guard.feed([call(' ba', 1)])  # under the window: held
        await guard.feed([call('d"}', 1), chunk(finish="tool_calls")])


async def test_held_tool_call_arguments_are_redacted_in_their_first_fragment() -> None:
    rec = record()
    guard = StreamGuard([hook(detectors(CLASSES["secrets"], "redact"), stream="hold")],
                        REQUEST, "g", rec)
    for piece in ('{"key": "', "AKIAQ7XK2M", "4N5P6R8T3W", '"}'):
        assert await guard.feed([chunk("text "), call(piece, 2)]) == []
    released = await guard.end()
    assert arguments_of(released, 2) == '{"key": "[API_KEY_1]"}'
    assert text_of(released) == "text " * 4
    # a redacted held stream is encoded whole, none of it relayed
    assert all(c.native is None and c.raw is None for b in released for c in b)
    assert "redacted api_key=1" in (rec.governance or "")


async def test_long_texts_are_scanned_in_a_thread_under_the_budget() -> None:
    threads: list[int] = []
    release = threading.Event()

    def find(text: str, kinds: frozenset[str] | None) -> list[Any]:
        threads.append(threading.get_ident())
        if len(text) >= OFFLOAD_CHARS:
            release.wait(10)  # past any budget, until the test lets it go
        return []

    check = detectors(CLASSES["pii"], "refuse", find)
    assert await check("response", "g", "short", REQUEST) is None
    assert threads == [threading.get_ident()]  # inline: a thread costs more than the scan
    late = Hook("scan", check, frozenset({"response"}), 0.05, False)
    try:
        with pytest.raises(ServiceUnavailable, match="'scan' could not check the response "
                                                     r"\(no answer within 0.05 s\)"):
            await _run(late, "response", "g", "x" * OFFLOAD_CHARS, REQUEST, record())
        rec = record()
        opened = Hook("scan", check, frozenset({"response"}), 0.05, True)
        assert await _run(opened, "response", "g", "x" * OFFLOAD_CHARS, REQUEST, rec) is None
        assert rec.governance == "guardrail:scan:failed-open"
    finally:
        release.set()
    assert len(threads) == 3 and threading.get_ident() not in threads[1:]


async def _upstream(*batches: list[ChatChunk]) -> AsyncIterator[list[ChatChunk]]:
    for batch in batches:
        yield batch


async def _live(rec: RequestRecord, settled: list[bool], *texts: str) -> LiveStream:
    batches = [[chunk(t)] for t in texts] + [[chunk(finish="stop")]]
    batches.append([ChatChunk(id="c", model="m", usage=Usage(prompt_tokens=3,
                                                             completion_tokens=9))])
    loop = asyncio.get_running_loop()
    opened = await open_stream(_upstream(*batches), ttft_s=1, deadline=loop.time() + 5)
    return LiveStream(opened, rec, stall_s=1, deadline=loop.time() + 5,
                      on_failure=lambda exc: None, settle=lambda: settled.append(True))


async def test_live_stream_refused_before_release_is_settled_once_with_usage() -> None:
    rec, settled = record(), []
    live = await _live(rec, settled, "all ", "bad")
    live.guard = StreamGuard([hook(Recorder(), stream="hold")], REQUEST, "g", rec)
    with pytest.raises(PolicyViolation):
        await live.prime()  # nothing was released: the gateway answers a plain 403
    await live.aclose()
    assert settled == [True] and rec.status == 403 and rec.error_class == "policy_violation"
    assert rec.usage is not None and rec.usage.completion_tokens == 9  # billed at its cost


async def test_live_stream_refused_mid_answer_ends_with_an_error() -> None:
    rec, settled = record(), []
    live = await _live(rec, settled, "a fine start here, ", "and more fine text ", "bad")
    live.guard = StreamGuard([hook(Recorder())], REQUEST, "g", rec)
    await live.prime()
    got: list[list[ChatChunk]] = []
    with pytest.raises(PolicyViolation):
        async for batch in live:
            got.append(batch)
    await live.aclose()
    assert "bad" not in text_of(got) and text_of(got).startswith("a fine start")
    assert settled == [True] and rec.status == 403


async def test_live_stream_passed_is_whole_and_complete() -> None:
    rec, settled = record(), []
    live = await _live(rec, settled, "all ", "good")
    live.guard = StreamGuard([hook(Recorder(), stream="hold")], REQUEST, "g", rec)
    await live.prime()
    got = [b async for b in live]
    await live.aclose()
    assert text_of(got) == "all good" and settled == [True] and rec.error_class is None


def test_the_prefilter_finds_what_a_whole_scan_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [json.loads(line)["text"] for line in CORPUS.read_text().splitlines()]
    rnd = random.Random(11)
    words = " ".join(texts).split(" ")
    alphabet = "0123456789 -.:+()ABCDEGHNXYZabcdef@\n"
    texts += [" ".join(rnd.choice(words) for _ in range(rnd.randint(1, 50)))
              for _ in range(1500)]
    texts += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 150)))
              for _ in range(1500)]
    windowed = [detect(t) for t in texts]
    monkeypatch.setattr(detector_module, "_windows", lambda text: [(0, len(text))])
    assert windowed == [detect(t) for t in texts]
    assert any(windowed)


async def test_presidio_backend() -> None:
    """presidio-analyzer's pattern recognizers, without a spaCy model, behind the same hook;
    secrets stay with the built-in detectors."""
    pytest.importorskip("presidio_analyzer")
    from polyroute.guardrails import presidio

    find = presidio.detector(CLASSES["pii"] | CLASSES["secrets"])
    text = ("Mail jane.doe@example.org, card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 "
            "7654 32, key AKIAIOSFODNN7EXAMPLE.")
    kinds = {f.kind: text[f.start:f.end] for f in find(text, None)}
    assert kinds["email"] == "jane.doe@example.org"
    assert kinds["card"] == "4111 1111 1111 1111" and kinds["api_key"] == "AKIAIOSFODNN7EXAMPLE"
    assert "iban" in kinds
    check = detectors(CLASSES["pii"], "redact", find)
    verdict = await check("response", "g", text, REQUEST)
    assert verdict is not None and not isinstance(verdict, str)
    assert "jane.doe@example.org" not in verdict.text and "[EMAIL_1]" in verdict.text


def test_presidio_backend_is_refused_by_config_without_the_package(tmp_path: Path) -> None:
    from polyroute.config.errors import ConfigError
    from polyroute.config.load import load_config
    from polyroute.guardrails import presidio

    if presidio.available():
        pytest.skip("presidio-analyzer is installed here")
    path = tmp_path / "polyroute.yaml"
    path.write_text(
        "providers: {p: {base_url: 'http://127.0.0.1:9/v1', api_key: '${K}'}}\n"
        "model_groups: {chat: {deployments: [{provider: p, model: m}]}}\n"
        "guardrails:\n  p: {type: detectors, classes: [pii], backend: presidio, "
        "stages: [response]}\n")
    with pytest.raises(ConfigError) as error:
        load_config(str(path), {"K": "x"})
    assert "guardrails.p.backend" in str(error.value) and "presidio-analyzer" in str(error.value)


@pytest.mark.parametrize(("guardrail", "where", "problem"), [
    ("{type: detectors, classes: [dna]}", "guardrails.g.classes", "'dna' is not a data class"),
    ("{type: detectors, classes: [pii], action: redact}", "guardrails.g.action",
     "redact applies to answers only"),
    ("{type: detectors, classes: [pii], action: redact, stages: [response], "
     "stream: incremental}", "guardrails.g.stream", "must hold a streamed answer"),
    ("{type: deny_terms}", "guardrails.g.terms", "names no term"),
    ("{type: max_chars, stages: [response]}", "guardrails.g.max_chars", "is missing"),
    ("{type: deny_terms, terms: [x], stages: [response], uninspectable: allow}",
     "guardrails.g.uninspectable", "applies to prompt checks only"),
    ("{type: deny_terms, terms: [x], uninspectable: maybe}", "guardrails.g.uninspectable",
     "use one of: refuse, allow"),
])
def test_a_bad_guardrail_is_one_line_naming_the_key(tmp_path: Path, guardrail: str,
                                                    where: str, problem: str) -> None:
    from polyroute.config.errors import ConfigError
    from polyroute.config.load import load_config

    path = tmp_path / "polyroute.yaml"
    path.write_text(
        "providers: {p: {base_url: 'http://127.0.0.1:9/v1', api_key: '${K}'}}\n"
        "model_groups: {chat: {deployments: [{provider: p, model: m}]}}\n"
        f"guardrails:\n  g: {guardrail}\n")
    with pytest.raises(ConfigError) as error:
        load_config(str(path), {"K": "x"})
    message = str(error.value)
    assert where in message and problem in message and "\n" not in message
