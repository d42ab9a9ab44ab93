"""The resumption filter and the billing of a stream finished by several attempts, on
hand-made chunks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from polyroute.config import Deployment, Endpoint
from polyroute.config.compiled import DEFAULT_FAILOVER_ON, Timeouts
from polyroute.engine.deadlines import Pace
from polyroute.engine.recovery import Billing, Recovery, sum_usage
from polyroute.engine.resume import Resume, Resumed, Transcript, open_resumed
from polyroute.engine.streaming import LiveStream, open_stream
from polyroute.errors import (
    AnswerDiverged,
    StreamInterrupted,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamUnavailable,
)
from polyroute.model.chat import (
    ChatChunk,
    ChatRequest,
    ChunkChoice,
    Delta,
    FunctionCall,
    Message,
    ToolCall,
)
from polyroute.model.record import RequestRecord
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


class _Attempts:
    """Stands in for the attempt loops of resumptions: the first hands over a prepared
    stream, the next finds no candidate."""

    def __init__(self, resumed: Resumed, dep: Deployment) -> None:
        self._resumed, self._dep = resumed, dep
        self.runs = 0

    def __call__(self, candidates: object) -> _Attempts:
        return self

    async def run(self, attempt: object) -> tuple[Resumed, Deployment]:
        self.runs += 1
        if self.runs > 1:
            raise UpstreamUnavailable("nothing left")
        return self._resumed, self._dep


async def test_a_stream_resumed_then_broken_again_bills_each_attempt_once() -> None:
    async def breaking(*texts: str) -> AsyncIterator[list[ChatChunk]]:
        for text in texts:
            yield [chunk(text, cid="first")]
        raise UpstreamConnectError("the upstream connection broke")

    endpoint = Endpoint("v", "openai", "http://127.0.0.1:9", {})
    first, second = (Deployment(n, "v", n, endpoint) for n in ("a", "b"))
    record = RequestRecord("r", 0, "chat", "m")
    loop = asyncio.get_running_loop()
    transcript = Transcript()
    resume = Resume(transcript, strict=False, prompt_tokens=7)
    resumed = Resumed([], breaking("lo"), resume)
    attempts = _Attempts(resumed, second)
    recovery = Recovery(
        ChatRequest(messages=[Message("user", "Hi")]), [first, second], record=record,
        adapters=None, timeouts=Timeouts(), deadline=loop.time() + 30,  # type: ignore[arg-type]
        failover_on=DEFAULT_FAILOVER_ON, loop=attempts,  # type: ignore[arg-type]
        on_failure=lambda dep, exc: None, prompt_tokens=5, max_resumes=2, pace=Pace())
    opened = await open_stream(breaking("Hel"), 1, loop.time() + 5)
    stream = LiveStream(opened, record, stall_s=1, deadline=loop.time() + 30,
                        on_failure=lambda exc: None, settle=lambda: None, recovery=recovery,
                        deployment=first)
    received = []
    with pytest.raises(StreamInterrupted, match="connection broke"):
        async for batch in stream:
            received += [c.choices[0].delta.content for c in batch if c.choices]
    await stream.aclose()
    assert "".join(filter(None, received)) == "Hello" and attempts.runs == 2
    assert record.charges is not None
    assert [(c.upstream_model, c.estimated) for c in record.charges] == [("a", True), ("b", True)]
    assert record.usage is not None and record.usage.prompt_tokens == 5 + 7
