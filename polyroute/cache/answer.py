"""What a cache entry holds, which answers may become one, and how a stored answer is told
again: whole, or as a stream of canonical chunks the client's dialect encoder turns into its
own events (usage included)."""

from __future__ import annotations

import msgspec

from polyroute.model.chat import (
    ChatChunk,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    FunctionCall,
    Message,
    ThinkingBlock,
    ToolCall,
)
from polyroute.model.usage import Usage

COMPLETE = frozenset({"stop", "tool_calls"})
"""Finish reasons of a whole answer. 'length' (cut at the output limit) is never stored: the
same prompt with a larger limit is another key anyway, and a truncated answer served again and
again is a bug a client cannot see; content_filter and vendor-specific ends are not either."""


class CachedAnswer(msgspec.Struct, array_like=True):
    stored_at: float
    """Unix time: the ``Age`` of a hit."""
    response: ChatResponse
    vendor: str | None
    upstream_model: str | None
    deployment: str | None


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(CachedAnswer).decode


def pack(answer: CachedAnswer) -> bytes:
    return _encode(answer)


def unpack(data: bytes) -> CachedAnswer | None:
    """None for bytes that are not an entry (another version's layout): a miss, not an error."""
    try:
        return _decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def storable(response: ChatResponse) -> bool:
    """A whole answer, with usage (a hit's saving is priced from it), and no refusal."""
    if not response.choices or response.usage is None:
        return False
    for choice in response.choices:
        if choice.finish_reason not in COMPLETE or choice.message.refusal:
            return False
        if not choice.message.content and not choice.message.tool_calls:
            return False
    return True


def kept(response: ChatResponse) -> ChatResponse:
    """The response without the upstream's own bytes: a hit is encoded for its client."""
    return msgspec.structs.replace(response, raw=None)


def replay(response: ChatResponse) -> list[ChatChunk]:
    """The stream of a stored answer: each choice's whole message in one delta, the finish
    reasons, then usage (which encoders drop for clients that did not ask for it)."""
    deltas = [ChunkChoice(c.index, _delta(c.message)) for c in response.choices]
    ends = [ChunkChoice(c.index, Delta(), c.finish_reason) for c in response.choices]
    r = response
    return [ChatChunk(r.id, r.model, deltas, r.created, None, r.system_fingerprint),
            ChatChunk(r.id, r.model, ends, r.created, None, r.system_fingerprint),
            ChatChunk(r.id, r.model, [], r.created, r.usage, r.system_fingerprint)]


def _delta(message: Message) -> Delta:
    calls = None
    if message.tool_calls:
        calls = [msgspec.structs.replace(call, index=i)
                 for i, call in enumerate(message.tool_calls)]
    content = message.content if isinstance(message.content, str) else None
    if isinstance(message.content, list):  # text parts only: answers carry no other kind
        content = "".join(p.text or "" for p in message.content)
    return Delta(role="assistant", content=content, tool_calls=calls,
                 reasoning_content=message.reasoning_content,
                 thinking_blocks=message.thinking_blocks)


class Assembler:
    """Rebuilds the whole answer from the chunks a client was sent, to store a streamed miss."""

    def __init__(self) -> None:
        self._first: ChatChunk | None = None
        self._choices: dict[int, _Building] = {}
        self.usage: Usage | None = None

    def feed(self, batch: list[ChatChunk]) -> None:
        for chunk in batch:
            if self._first is None and chunk.id:
                self._first = chunk
            if chunk.usage is not None:
                self.usage = chunk.usage
            for choice in chunk.choices:
                building = self._choices.get(choice.index)
                if building is None:
                    building = self._choices[choice.index] = _Building()
                building.add(choice)

    def response(self) -> ChatResponse:
        first = self._first or ChatChunk()
        return ChatResponse(
            id=first.id, model=first.model, created=first.created,
            system_fingerprint=first.system_fingerprint, usage=self.usage,
            choices=[self._choices[i].choice(i) for i in sorted(self._choices)])


class _Building:
    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.calls: dict[int, tuple[ToolCall, list[str]]] = {}
        self.thinking: list[ThinkingBlock] = []
        self.finish: str | None = None

    def add(self, choice: ChunkChoice) -> None:
        d = choice.delta
        if d.content:
            self.text.append(d.content)
        if d.reasoning_content:
            self.reasoning.append(d.reasoning_content)
        if d.refusal:
            self.refusal.append(d.refusal)
        if d.thinking_blocks:
            self.thinking += d.thinking_blocks
        for i, call in enumerate(d.tool_calls or ()):
            index = call.index if call.index is not None else i
            found = self.calls.get(index)
            if found is None:
                found = self.calls[index] = (call, [])
            elif call.id and not found[0].id:
                self.calls[index] = found = (msgspec.structs.replace(found[0], id=call.id),
                                             found[1])
            if call.function is not None and call.function.arguments:
                found[1].append(call.function.arguments)
        if choice.finish_reason:
            self.finish = choice.finish_reason

    def choice(self, index: int) -> Choice:
        calls = None
        if self.calls:
            calls = []
            for i in sorted(self.calls):
                first, parts = self.calls[i]
                name = first.function.name if first.function else None
                calls.append(ToolCall(id=first.id, type=first.type or "function",
                                      function=FunctionCall(name, "".join(parts)),
                                      extra_content=first.extra_content))
        message = Message(
            role="assistant", content="".join(self.text) if self.text else None,
            tool_calls=calls, refusal="".join(self.refusal) or None,
            reasoning_content="".join(self.reasoning) or None,
            thinking_blocks=list(self.thinking) or None)
        return Choice(index, message, self.finish)
