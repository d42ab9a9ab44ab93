"""Finishing a stream that broke mid-answer on another attempt, so the client never sees it.

Once content has reached the client, the stream can no longer be swapped invisibly: the client
holds a prefix of the answer. When the upstream then fails (cut, stall, an unreadable event, a
vendor error event), the next candidate is asked to finish *that* answer:

1. **continuation**, where its provider can continue a final assistant message
   (``quirks.continuation``): the text the client has is sent as the assistant's partial
   answer, and what comes back is relayed as is;
2. **regenerate and splice** otherwise (or when the continuation is refused with a 4xx): the
   original request is sent again and the new answer is relayed only once it has reproduced,
   exactly, the text the client already has; an answer that diverges fails that candidate;
3. when no candidate can finish it, the stream ends with an error event naming the *original*
   failure.

A resumed attempt, like a first one, can still fail invisibly until it produces something the
client does not have yet. The client sees one stream: one id, no second role chunk, one
finish reason and one usage block, the sum of what every attempt billed (:class:`Billing`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import msgspec

from polyroute.adapters.passthrough import refuse_untranslatable
from polyroute.adapters.registry import AdapterRegistry
from polyroute.config import Deployment
from polyroute.config.compiled import Timeouts
from polyroute.engine.attempts import AttemptLoop
from polyroute.engine.deadlines import Pace, asks_for_reasoning, prompt_units
from polyroute.engine.resume import Resume, Resumed, Transcript, open_resumed
from polyroute.errors import UpstreamError, UpstreamRejected
from polyroute.model.chat import ChatRequest, Message
from polyroute.model.record import Charge, RequestRecord
from polyroute.model.usage import Usage

CHARS_PER_TOKEN = 4
"""For attempts that broke before reporting usage: the same rough rule as admission's."""


class Billing:
    """What each attempt of one stream billed, so that the client's one usage block and the
    ledger both hold their sum, each attempt priced at its own deployment's price."""

    def __init__(self) -> None:
        self.charges: list[Charge] = []

    def add(self, vendor: str, model: str, usage: Usage | None, *, prompt_tokens: int,
            chars: int) -> None:
        if usage is None:  # it broke before its usage came: what it read and wrote, roughly
            usage = Usage(prompt_tokens=prompt_tokens,
                          completion_tokens=-(-chars // CHARS_PER_TOKEN),
                          total_tokens=prompt_tokens + -(-chars // CHARS_PER_TOKEN))
            self.charges.append(Charge(vendor, model, usage, estimated=True))
        else:
            self.charges.append(Charge(vendor, model, usage))

    def total(self, last: Usage | None = None) -> Usage:
        usages = [c.usage for c in self.charges] + ([last] if last is not None else [])
        return sum_usage(usages)


def sum_usage(usages: list[Usage]) -> Usage:
    as_dicts = [msgspec.to_builtins(u) for u in usages]
    return msgspec.convert(_sum(as_dicts), Usage)


def _sum(values: list[dict[str, object]]) -> dict[str, object]:
    total: dict[str, object] = {}
    for value in values:
        for key, item in value.items():
            if isinstance(item, dict):
                total[key] = _sum([total.get(key) or {}, item])  # type: ignore[list-item]
            elif isinstance(item, int) and not isinstance(item, bool):
                total[key] = int(total.get(key) or 0) + item  # type: ignore[call-overload]
    return total


_RESUMES_NATIVELY = frozenset({"anthropic", "gemini"})
"""Protocols whose passthrough continues a broken answer in the client's own body (the
partial answer appended to its messages or contents) and whose dialect encoders switch to
translating at the break: a resuming attempt keeps the native request. The others'
(Responses, Converse) resume translated."""


class Recovery:
    """Resumes one request's stream on the candidates it has left (and, as a last resort, on
    the deployment that broke), through an attempt loop of their own: circuits, retries and
    the request's deadline hold as for the first attempt."""

    def __init__(
        self,
        request: ChatRequest,
        candidates: Sequence[Deployment],
        *,
        record: RequestRecord,
        adapters: AdapterRegistry,
        timeouts: Timeouts,
        deadline: float,
        failover_on: frozenset[str],
        loop: Callable[[list[Deployment]], AttemptLoop[Resumed]],
        on_failure: Callable[[Deployment, UpstreamError], None],
        prompt_tokens: int,
        max_resumes: int,
        pace: Pace,
    ) -> None:
        self._pace = pace
        self._units = prompt_units(prompt_tokens)
        native = request.native
        if native is None or native.protocol in _RESUMES_NATIVELY:
            self._request = request
            self._untranslatable = False
        else:
            # A resuming attempt translates: its events are spliced into a stream that has
            # already begun, so another dialect's native bytes (a second response.created …)
            # must not reach the client; parts only the native body holds cannot be resumed.
            self._request = msgspec.structs.replace(request, native=None)
            self._untranslatable = native.untranslatable is not None
        self._resumes_left = max_resumes
        self._candidates = tuple(candidates)
        self._record = record
        self._adapters = adapters
        self._timeouts = timeouts
        self._deadline = deadline
        self._failover_on = failover_on
        self._loop = loop
        self._on_failure = on_failure
        self.prompt_tokens = prompt_tokens
        self.billing = Billing()

    def why_not(self, failure: UpstreamError, sent: Transcript) -> str | None:
        if failure.trigger not in self._failover_on:
            return f"'{failure.trigger}' is not in failover_on"
        blocker = sent.why_not()
        if blocker is not None:
            return blocker
        if self._untranslatable:  # a resuming attempt is translated, and this one cannot be
            return "the request holds parts only its own protocol takes, as they came"
        if self._resumes_left <= 0:
            return "the stream was already resumed as often as retry.max_attempts allows"
        if asyncio.get_running_loop().time() >= self._deadline:
            return "the request's deadline has passed"
        return None

    async def resume(self, broken: Deployment, sent: Transcript) -> tuple[Resumed, Deployment]:
        """Another attempt that finishes the answer ``sent`` began. Raises the attempt loop's
        error when no candidate can."""
        self._resumes_left -= 1
        tried = {a.deployment for a in self._record.attempts}
        candidates = [d for d in self._candidates if d.name not in tried]
        candidates.append(broken)  # the same deployment, when nothing else is left

        async def attempt(dep: Deployment) -> Resumed:
            resumed = await self._attempt(dep, sent)
            resumed.on_failure = lambda exc: self._on_failure(dep, exc)
            return resumed

        return await self._loop(candidates).run(attempt)

    async def _attempt(self, dep: Deployment, sent: Transcript) -> Resumed:
        timeouts, pace = self._timeouts, self._pace
        ttft_s = timeouts.ttft_s if asks_for_reasoning(self._request) \
            else pace.ttft_s(dep.upstream, timeouts, self._units)
        stall_s = pace.stall_s(dep.upstream, timeouts)
        text = sent.text
        prefix = text.rstrip()
        refuse_untranslatable(self._request, dep)
        adapter = self._adapters.get(dep.endpoint.protocol)
        if dep.endpoint.quirks.continuation != "none" and prefix and not sent.reasoning \
                and not sent.calls:  # a prefill cannot hold a tool call
            # Trailing whitespace is taken off the prefix (Anthropic refuses a final assistant
            # message ending in it) and swallowed if the continuation starts with it.
            request = msgspec.structs.replace(
                self._request, continue_final=True,
                messages=[*self._request.messages, Message("assistant", prefix)])
            # Mistral's answer may repeat the prefix: swallowed too, if it does.
            echo = text if dep.endpoint.quirks.continuation == "prefix" else text[len(prefix):]
            resume = Resume(sent, strict=False, echo=echo,
                            prompt_tokens=self.prompt_tokens + len(prefix) // CHARS_PER_TOKEN)
            try:
                return await open_resumed(
                    adapter.stream_chat(request, dep, connect_s=timeouts.connect_s), resume,
                    ttft_s=ttft_s, stall_s=stall_s, deadline=self._deadline)
            except UpstreamRejected:
                pass  # this model or server refuses the prefix: regenerate instead
        resume = Resume(sent, strict=True, prompt_tokens=self.prompt_tokens)
        return await open_resumed(
            adapter.stream_chat(self._request, dep, connect_s=timeouts.connect_s), resume,
            ttft_s=ttft_s, stall_s=stall_s, deadline=self._deadline)
