"""The resumption filter and the billing of a stream finished by several attempts, on
hand-made chunks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from polyroute.engine.recovery import Billing, Resume, Transcript, open_resumed, sum_usage
from polyroute.errors import AnswerDiverged, UpstreamProtocolError
from polyroute.model.chat import ChatChunk, ChunkChoice, Delta, FunctionCall, ToolCall
from polyroute.model.usage import PromptTokensDetails, Usage


def chunk(text: str | None = None, *, finish: str | None = None, role: str | None = None,
          reasoning: str | None = None, cid: str = "new") -> ChatChunk:
    delta = Delta(role=role, content=text, reasoning_content=reasoning)
    return ChatChunk(id=cid, model="m2", created=2, choices=[ChunkChoice(0, delta, finish)])


def sent(*texts: str, reasoning: str = "") -> Transcript:
    transcript = Transcript()
    batch = [chunk(role="assistant", cid="first")]
    if reasoning:
        batch.append(chunk(reasoning=reasoning, cid="first"))
    batch += [chunk(t, cid="first") for t in texts]
    transcript.observe(batch)
    return transcript


def texts(batches: list[list[ChatChunk]]) -> str:
    return "".join(c.choices[0].delta.content or "" for b in batches for c in b if c.choices)


def test_splice_swallows_the_replay_and_relays_the_rest_under_the_first_id() -> None:
    resume = Resume(sent("Hello", " wor"), strict=True)
    out = [resume.feed([chunk(role="assistant", text="")]), resume.feed([chunk("Hel")]),
           resume.feed([chunk("lo wo")])]
    assert texts(out) == "" and not resume.started
    out = resume.feed([chunk("rld"), chunk(finish="stop")])
    assert resume.started and texts([out]) == "ld"
    assert {c.id for c in out} == {"first"} and out[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].delta.role is None for c in out)


@pytest.mark.parametrize("batch", [
    [chunk("Help")],  # different text
    [chunk("Hel"), chunk(finish="stop")],  # shorter: ends before the break
])
def test_splice_refuses_an_answer_that_differs(batch: list[ChatChunk]) -> None:
    with pytest.raises(AnswerDiverged):
        Resume(sent("Hello"), strict=True).feed(batch)


def test_splice_replays_reasoning_then_content() -> None:
    resume = Resume(sent("Hi", reasoning="think"), strict=True)
    assert resume.feed([chunk(reasoning="thi"), chunk(reasoning="nk"), chunk("H")]) == []
    assert texts([resume.feed([chunk("i there")])]) == " there"
    with pytest.raises(AnswerDiverged):  # content while thoughts are still being replayed
        Resume(sent("Hi", reasoning="think"), strict=True).feed([chunk("Hi")])


def test_continuation_swallows_only_the_echoed_whitespace() -> None:
    resume = Resume(sent("Hello "), strict=False, echo=" ")
    assert texts([resume.feed([chunk(" world")])]) == "world"
    resume = Resume(sent("Hello "), strict=False, echo=" ")
    assert texts([resume.feed([chunk("world")])]) == "world"  # did not repeat it: all relayed


def calls(*fragments: tuple[int, str | None, str]) -> ChatChunk:
    return ChatChunk(choices=[ChunkChoice(0, Delta(tool_calls=[
        ToolCall(index=i, id=f"id-{i}" if name else None,
                 function=FunctionCall(name=name, arguments=args))
        for i, name, args in fragments]))])


def test_half_sent_tool_calls_and_several_choices_block_resumption() -> None:
    transcript = sent("Hi")
    assert transcript.why_not() is None
    transcript.observe([calls((0, "f", '{"a'))])
    assert transcript.why_not() == "a tool call's arguments were half sent"
    transcript.observe([calls((0, None, '": 1}'))])
    assert transcript.why_not() is None  # whole again: a boundary
    other = Transcript()
    other.observe([ChatChunk(choices=[ChunkChoice(1, Delta(content="x"))])])
    assert other.why_not() == "the answer has several choices"


def test_splice_replays_whole_tool_calls_and_relays_the_next() -> None:
    transcript = sent("Hi")
    transcript.observe([calls((0, "f", '{"a": 1}'))])
    resume = Resume(transcript, strict=True)
    assert resume.feed([chunk("Hi"), calls((0, "f", '{"a"')), calls((0, None, ': 1}'))]) == []
    out = resume.feed([calls((1, "g", "{}")), chunk(finish="tool_calls")])
    assert resume.started
    relayed = [c for o in out for c in o.choices[0].delta.tool_calls or ()]
    assert [(c.index, c.function.name if c.function else None) for c in relayed] == [(1, "g")]
    with pytest.raises(AnswerDiverged):
        Resume(transcript, strict=True).feed([chunk("Hi"), calls((0, "f", '{"a": 2}'))])
    with pytest.raises(AnswerDiverged):  # a new call before the one the client has
        Resume(transcript, strict=True).feed([chunk("Hi"), calls((1, "g", "{}"))])


def test_billing_sums_every_attempt_and_estimates_a_broken_one() -> None:
    billing = Billing()
    billing.add("a", "m", None, prompt_tokens=10, chars=9)  # broke before its usage
    billing.add("b", "n", Usage(prompt_tokens=12, completion_tokens=5, total_tokens=17,
                                prompt_tokens_details=PromptTokensDetails(cached_tokens=4)),
                prompt_tokens=0, chars=0)
    assert [c.estimated for c in billing.charges] == [True, False]
    total = billing.total(Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2))
    assert (total.prompt_tokens, total.completion_tokens, total.total_tokens) == (23, 9, 32)
    assert total.cached_tokens == 4
    assert sum_usage([]) == Usage()


async def test_a_resuming_stream_that_ends_before_the_break_fails() -> None:
    async def upstream() -> AsyncIterator[list[ChatChunk]]:
        yield [chunk("Hel")]

    loop = asyncio.get_running_loop()
    with pytest.raises(UpstreamProtocolError):
        await open_resumed(upstream(), Resume(sent("Hello"), strict=True), ttft_s=1,
                           stall_s=1, deadline=loop.time() + 5)
