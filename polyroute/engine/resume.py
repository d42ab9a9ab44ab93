"""What the client has of an answer, and how another attempt's stream takes over from it.

:class:`Transcript` records what was relayed (text, reasoning, tool calls) and whether a
boundary is safe to resume from. :class:`Resume` turns a resuming attempt's stream into the
rest of the client's stream: for a splice it swallows the replay of what the client has and
fails on any difference; for a continuation it relays what comes, minus a repeated prefix.
Pure and stateful, one of each per stream (:mod:`.recovery` drives them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import msgspec

from polyroute.engine.estimate import text_units
from polyroute.errors import (
    AnswerDiverged,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from polyroute.model.chat import ChatChunk, ChunkChoice, Delta, ToolCall
from polyroute.model.usage import Usage

Batches = AsyncIterator[list[ChatChunk]]


class Transcript:
    """What the client has been sent of the answer (choice 0), and whether a resumption can
    take over from there."""

    __slots__ = ("blocker", "call_chars", "calls", "content", "created", "finished", "id",
                 "model", "others", "reasoning")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, SentCall] = {}
        """Tool calls sent so far, by index."""
        self.id = ""
        self.model = ""
        self.created = 0
        self.finished = False
        self.blocker: str | None = None
        """Why no other attempt can finish this answer, once that is so."""
        self.others: list[str] = []
        """Text sent that choice 0's content and reasoning leave out (refusals, the other
        choices'): kept only to be counted, by :meth:`units`."""
        self.call_chars = 0
        """Characters of the other choices' tool calls (choice 0's are in ``calls``)."""

    def observe(self, batch: list[ChatChunk]) -> None:
        for chunk in batch:
            if not self.id and chunk.id:
                self.id, self.model, self.created = chunk.id, chunk.model, chunk.created
            for choice in chunk.choices:
                if choice.finish_reason:
                    self.finished = True
                delta = choice.delta
                if choice.index != 0:
                    self.blocker = "the answer has several choices"
                    self._other(delta)
                    continue
                if delta.content:
                    self.content.append(delta.content)
                if delta.reasoning_content:
                    self.reasoning.append(delta.reasoning_content)
                for call in delta.tool_calls or ():
                    sent = self.calls.setdefault(call.index or 0, SentCall())
                    if call.function is not None:
                        sent.name += call.function.name or ""
                        sent.arguments += call.function.arguments or ""
                if delta.refusal:
                    self.blocker = "the answer is a refusal"
                    self.others.append(delta.refusal)

    def _other(self, delta: Delta) -> None:
        """A delta of another choice than 0: only counted."""
        others = self.others
        for text in (delta.content, delta.reasoning_content, delta.refusal):
            if text:
                others.append(text)
        for call in delta.tool_calls or ():
            function = call.function
            if function is not None:
                self.call_chars += len(function.arguments or "") + len(function.name or "")

    def units(self) -> int:
        """Quarter tokens of everything sent, every choice's (what a stream that ends without
        usage is charged): counted once at the end, not per batch, as text_units adds up."""
        text = "".join(self.content) + "".join(self.reasoning) + "".join(self.others)
        calls = sum(len(c.name) + len(c.arguments) for c in self.calls.values())
        return text_units(text) + calls + self.call_chars

    @property
    def text(self) -> str:
        return "".join(self.content)

    @property
    def chars(self) -> int:
        """Characters generated so far (for the estimate of an attempt without usage)."""
        return len(self.text) + sum(map(len, self.reasoning)) + sum(
            len(c.arguments) for c in self.calls.values())

    def why_not(self) -> str | None:
        """Why no other attempt can take over from here, if so. A tool call whose arguments
        are not yet whole JSON is half sent: no attempt can finish *its* fragments (a
        regenerated call is a new call, with its own id)."""
        if self.blocker is not None:
            return self.blocker
        if any(not call.whole for call in self.calls.values()):
            return "a tool call's arguments were half sent"
        return None


class SentCall:
    __slots__ = ("arguments", "name")

    def __init__(self) -> None:
        self.name = ""
        self.arguments = ""

    @property
    def whole(self) -> bool:
        try:
            msgspec.json.decode(self.arguments)
        except msgspec.DecodeError:
            return False
        return True


class Resume:
    """Turns a resuming attempt's stream into the rest of the client's stream.

    ``strict`` (splice): the attempt must first reproduce the transcript exactly; that part is
    swallowed, and any difference raises :class:`AnswerDiverged`. Not strict (continuation):
    ``echo`` is swallowed if the attempt starts with it (the whitespace taken off the end of
    the prefix, or a prefix a server repeats) and the rest relayed as it comes.
    """

    def __init__(self, sent: Transcript, *, strict: bool, echo: str = "",
                 prompt_tokens: int = 0) -> None:
        self._sent = sent
        self._strict = strict
        self.mode = "splice" if strict else "continuation"
        self._content = sent.text if strict else echo
        self._reasoning = "".join(sent.reasoning) if strict else ""
        self._calls = {i: (c.name, c.arguments) for i, c in sent.calls.items()} if strict \
            else {}
        """Tool calls to replay: index → (name, arguments) the client has whole."""
        self._replayed: dict[int, tuple[str, str]] = {}
        self.prompt_tokens = prompt_tokens
        """An estimate of what this attempt's prompt costs, should it break before usage."""
        self.started = False
        """The attempt has produced something the client does not have yet."""
        self.chars = 0
        self.usage: Usage | None = None

    def feed(self, batch: list[ChatChunk]) -> list[ChatChunk]:
        sent, out = self._sent, []
        for chunk in batch:
            if chunk.usage is not None:
                self.usage = chunk.usage
            choices = [c for c in map(self._choice, chunk.choices) if c is not None]
            if choices or (chunk.usage is not None and not chunk.choices):
                out.append(ChatChunk(id=sent.id, model=sent.model, created=sent.created,
                                     choices=choices, usage=chunk.usage,
                                     system_fingerprint=chunk.system_fingerprint))
        return out

    def _choice(self, choice: ChunkChoice) -> ChunkChoice | None:
        if choice.index != 0:
            raise _diverged("it has several choices")
        delta = choice.delta
        self.chars += len(delta.content or "") + len(delta.reasoning_content or "") + sum(
            len(c.function.arguments or "") for c in delta.tool_calls or () if c.function)
        reasoning = self._skip_reasoning(delta.reasoning_content)
        content = self._skip_content(delta.content)
        calls = self._skip_calls(delta.tool_calls) if delta.tool_calls else None
        replaying = self._replaying
        if replaying and (calls or delta.refusal or choice.finish_reason):
            raise _diverged("it ended or changed course before reaching the break")
        thinking = None if replaying else delta.thinking_blocks
        fresh = Delta(content=content or None, reasoning_content=reasoning or None,
                      tool_calls=calls or None, refusal=delta.refusal,
                      thinking_blocks=thinking)
        if fresh == _EMPTY and not choice.finish_reason:
            return None
        self.started = True
        return ChunkChoice(0, fresh, choice.finish_reason)

    @property
    def _replaying(self) -> bool:
        """A splice has not yet reproduced everything the client has."""
        return self._strict and bool(self._content or self._reasoning
                                     or any(self._replayed.get(i) != call
                                            for i, call in self._calls.items()))

    def _skip_calls(self, calls: list[ToolCall]) -> list[ToolCall]:
        """The calls the client does not have yet. Fragments of calls it has whole must add
        up to exactly those (name and arguments; the id is the new attempt's own)."""
        fresh = []
        for call in calls:
            index = call.index or 0
            expected = self._calls.get(index)
            if expected is None:
                if self._replaying:
                    raise _diverged("it calls a tool before reaching the break")
                fresh.append(call)
                continue
            if self._content or self._reasoning:
                raise _diverged("it calls a tool before reaching the break")
            name, arguments = self._replayed.get(index, ("", ""))
            function = call.function
            name += (function.name or "") if function else ""
            arguments += (function.arguments or "") if function else ""
            if not (expected[0].startswith(name) and expected[1].startswith(arguments)):
                raise _diverged("its tool call differs from the one the client has")
            self._replayed[index] = (name, arguments)
        return fresh

    def _skip_reasoning(self, text: str | None) -> str | None:
        if not text:
            return text
        if self._strict and not self._reasoning and self._content:
            raise _diverged("it thinks longer than the answer it replaces")
        text, self._reasoning = self._skip(text, self._reasoning)
        return text

    def _skip_content(self, text: str | None) -> str | None:
        if not text:
            return text
        if self._strict and self._reasoning:
            raise _diverged("it thinks less than the answer it replaces")
        text, self._content = self._skip(text, self._content)
        return text

    def _skip(self, text: str, expected: str) -> tuple[str, str]:
        """``text`` less what it repeats of ``expected``, and what is left to expect."""
        if not expected:
            return text, ""
        n = min(len(text), len(expected))
        if text[:n] == expected[:n]:
            return text[n:], expected[n:]
        if self._strict:
            raise _diverged("its text differs from what the client has")
        return text, ""  # a continuation that did not repeat: relay it all



def _diverged(why: str) -> AnswerDiverged:
    return AnswerDiverged(f"the regenerated answer cannot be spliced on: {why}")


_EMPTY = Delta()


@dataclass(slots=True)
class Resumed:
    """An attempt that has taken over a broken stream: what it already produced (``held``),
    the rest of its upstream, and the filter its batches go through."""

    held: list[list[ChatChunk]]
    upstream: Batches
    resume: Resume
    on_failure: Callable[[UpstreamError], None] = field(default=lambda exc: None)

    async def aclose(self) -> None:
        await self.upstream.aclose()  # type: ignore[attr-defined]


async def open_resumed(upstream: Batches, resume: Resume, *, ttft_s: float, stall_s: float,
                       deadline: float) -> Resumed:
    """Read ``upstream`` through ``resume`` until it produces something new: the resuming
    attempt's point of no return. Its first event must come within ``ttft_s``, each later one
    within ``stall_s`` (a splice replays text the client has, which takes time)."""
    held: list[list[ChatChunk]] = []
    loop = asyncio.get_running_loop()
    wait = ttft_s
    try:
        while not resume.started:
            limit = min(loop.time() + wait, deadline)
            try:
                async with asyncio.timeout_at(limit):
                    batch = await anext(upstream)
            except StopAsyncIteration:
                raise UpstreamProtocolError(
                    "the resuming stream ended before it reached the break") from None
            except TimeoutError:
                raise UpstreamTimeout(f"the resuming stream was silent for {wait:g} s"
                                      if limit < deadline else
                                      "the request's deadline passed while resuming") from None
            wait = stall_s
            out = resume.feed(batch)
            if out:
                held.append(out)
        return Resumed(held, upstream, resume)
    except BaseException:
        await upstream.aclose()  # type: ignore[attr-defined]
        raise
