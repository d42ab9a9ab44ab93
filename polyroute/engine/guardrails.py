"""Guardrail hooks: checks that run on the prompt before it is routed and on the answer before
the client gets it — whole, or a streamed answer window by window (``incremental``) or held
until it is checked (``hold``) — each with its own time budget and its own rule for when it
cannot answer (fail open: let the request through; fail closed: refuse with 503).

A hook is ``check(stage, model, text, request) -> reason to refuse | Redacted | None``. Built
in: a webhook (its HTTP call is handed in by the composition root, since the engine knows no
web framework), JSON-schema validation of structured outputs, the personal-data and secret
detectors (refusing, or redacting answers), deny-lists and size limits. Hooks run for every
request, or (``scoped``) for the organisations, teams and keys whose governance policy names
them; a policy's ``answer_data_classes`` become detector hooks of that request.

Governance policies (``governance.py``) run first, so a hook sees a prompt whose personal
data a policy redacted, and an answer before its placeholders are restored.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

import msgspec

from polyroute.config.compiled import GuardrailSettings
from polyroute.engine.governance import scope_name, texts
from polyroute.errors import PolicyViolation, ServiceUnavailable
from polyroute.guardrails import presidio
from polyroute.guardrails.detectors import CLASSES, Finding, detect
from polyroute.guardrails.redact import Redactor
from polyroute.model.chat import ChatChunk, ChatRequest, ChatResponse, FunctionCall, ToolCall
from polyroute.model.governance import DataPolicy
from polyroute.model.record import RequestRecord

log = logging.getLogger("polyroute.guardrails")


@dataclass(frozen=True, slots=True)
class Redacted:
    """A hook's verdict that lets the text through with values replaced."""

    text: str
    note: str
    """What was replaced, for the request's record (``email=1 card=1``)."""


Check = Callable[[str, str, str, ChatRequest], Awaitable[str | Redacted | None]]
"""(stage, model group, text, the request) → why the text is refused, the text redacted, or
None."""
Post = Callable[[str, bytes, float], Awaitable[bytes]]
"""(url, JSON body, timeout in seconds) → the response body of a 2xx; raises otherwise."""


@dataclass(frozen=True, slots=True)
class Hook:
    name: str
    check: Check
    stages: frozenset[str]
    timeout_s: float
    fail_open: bool
    stream: str = "incremental"
    """A streamed answer: 'incremental' (each window checked before it is released) or
    'hold' (the whole answer held until checked)."""
    window_chars: int = 256
    scoped: bool = False
    """Runs only where a governance policy names it."""
    allow_uninspectable: bool = False
    """A request carrying what it cannot read (an uploaded file) goes on without its check;
    by default such a request is refused (``media_governance.refuse_unread``)."""


class _Verdict(msgspec.Struct):
    allow: bool
    reason: str | None = None


class _Ask(msgspec.Struct):
    stage: str
    model: str
    text: str


_decode_verdict = msgspec.json.Decoder(_Verdict).decode
_encode = msgspec.json.Encoder().encode


def webhook(url: str, timeout_s: float, post: Post) -> Check:
    async def check(stage: str, model: str, text: str, request: ChatRequest) -> str | None:
        verdict = _decode_verdict(await post(url, _encode(_Ask(stage, model, text)),
                                             timeout_s))
        return None if verdict.allow else (verdict.reason or "refused")

    return check


def _schema_of(request: ChatRequest) -> dict[str, object] | None:
    return request.response_format.schema if request.response_format else None


async def json_schema(stage: str, model: str, text: str, request: ChatRequest) -> str | None:
    """A structured output must be valid against the schema the client asked for."""
    schema = _schema_of(request)
    if schema is None:
        return None  # no structured output was asked for
    import jsonschema  # optional (polyroute[guardrails]); config checked it is installed

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"the answer is not JSON ({exc.msg} at character {exc.pos})"
    error = jsonschema.exceptions.best_match(
        jsonschema.validators.validator_for(schema)(schema).iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"the answer does not match the schema at {where}: {error.message}"


Find = Callable[[str, frozenset[str]], list[Finding]]


OFFLOAD_CHARS = 4096
"""Texts at least this long are scanned by the detectors in a worker thread, so that the
hook's time budget bounds the wait; shorter ones (a stream's windows, most answers) are
scanned inline, where a thread's hand-off costs a good part of the scan
(bench/guardrails/offload.py: ~0.2 ms against ~0.5 ms for 256 digit-dense characters)."""


def detectors(kinds: frozenset[str], action: str, find: Find = detect,
              offload_chars: int = OFFLOAD_CHARS) -> Check:
    """Personal data and secrets: refused, or (``redact``) replaced by placeholders."""

    async def check(stage: str, model: str, text: str, request: ChatRequest
                    ) -> str | Redacted | None:
        if len(text) >= offload_chars:
            # A scan past the budget is abandoned, not stopped (a thread cannot be): it ends
            # in the background while the hook's fail mode answers the request.
            found = await asyncio.to_thread(find, text, kinds)
        else:
            found = find(text, kinds)
        if not found:
            return None
        if action == "redact":
            redactor = Redactor(kinds)
            out = redactor.redact(text, found)
            return Redacted(out, " ".join(f"{k}={n}" for k, n in sorted(redactor.counts.items())))
        what = "prompt" if stage == "request" else "answer"
        return f"the {what} holds {', '.join(sorted({f.kind for f in found}))}"

    return check


def deny_terms(terms: Sequence[str]) -> Check:
    lowered = tuple((t, t.lower()) for t in terms)

    async def check(stage: str, model: str, text: str, request: ChatRequest) -> str | None:
        low = text.lower()
        for term, term_low in lowered:
            if term_low in low:
                return f"the text contains a denied term ({term!r})"
        return None

    return check


def max_chars(limit: int) -> Check:
    async def check(stage: str, model: str, text: str, request: ChatRequest) -> str | None:
        if len(text) > limit:
            return f"the text has {len(text)} characters, more than {limit}"
        return None

    return check


def _check_of(g: GuardrailSettings, post: Post) -> Check:
    if g.type == "json_schema":
        return json_schema
    if g.type == "detectors":
        if g.backend == "presidio":  # optional; config checked it is installed
            return detectors(g.kinds, g.action, presidio.detector(g.kinds))
        return detectors(g.kinds, g.action)
    if g.type == "deny_terms":
        return deny_terms(g.terms)
    if g.type == "max_chars":
        return max_chars(g.max_chars)
    return webhook(g.url, g.timeout_s, post)


def hooks_from(settings: Sequence[GuardrailSettings], post: Post) -> tuple[Hook, ...]:
    return tuple(Hook(g.name, _check_of(g, post), g.stages, g.timeout_s, g.fail_open,
                      g.stream, g.window_chars, g.scoped, g.uninspectable == "allow")
                 for g in settings)


ANSWER_TIMEOUT_S = 1.0
"""The time budget of a policy's ``answer_data_classes`` (in-process detectors)."""


class Guardrails:
    """The configured hooks; ``select`` picks those of one request."""

    def __init__(self, hooks: Sequence[Hook]) -> None:
        self._hooks = tuple(hooks)
        self._by_name = {h.name: h for h in hooks}
        everyone = tuple(h for h in hooks if not h.scoped)
        self._everyone = Checks(everyone) if everyone else None

    @property
    def everyone(self) -> bool:
        """Some hook runs on every request."""
        return self._everyone is not None

    def select(self, policies: Sequence[tuple[str, DataPolicy]]) -> Checks | None:
        """The hooks of a request whose caller has these governance policies (scope, policy);
        None when there are none. A policy naming a guardrail the config lacks fails
        closed."""
        if not policies or not any(p.guardrails or p.answer_data_classes
                                   for _, p in policies):
            return self._everyone
        chosen = [h for h in self._hooks if not h.scoped]
        for scope, policy in policies:
            for name in policy.guardrails:
                hook = self._by_name.get(name)
                if hook is None:
                    raise ServiceUnavailable(
                        f"The governance policy of {scope_name(scope)} names the guardrail "
                        f"'{name}', which this gateway's config does not define; the request "
                        "is refused until it does (fail closed).", retry_after=None)
                if hook not in chosen:
                    chosen.append(hook)
            by_action: dict[str, set[str]] = {}
            for cls, action in policy.answer_data_classes.items():
                by_action.setdefault(action, set()).update(CLASSES[cls])
            for verb, kinds in sorted(by_action.items()):
                chosen.append(Hook(f"{scope}/answer_data_classes",
                                   detectors(frozenset(kinds), verb), frozenset({"response"}),
                                   ANSWER_TIMEOUT_S, False, "hold"))
        return Checks(chosen)


class Checks:
    """The hooks of one request, by stage."""

    def __init__(self, hooks: Sequence[Hook]) -> None:
        self.prompts = tuple(h for h in hooks if "request" in h.stages)
        self.answers = tuple(h for h in hooks if "response" in h.stages)

    async def request(self, request: ChatRequest, group: str, record: RequestRecord) -> None:
        for hook in self.prompts:
            verdict = await _run(hook, "request", group, _prompt(request), request, record)
            if isinstance(verdict, Redacted):  # config allows redaction on answers only
                raise ServiceUnavailable(f"The guardrail '{hook.name}' redacted a prompt, "
                                         "which polyroute cannot send; it fails closed.")

    def readable(self, request: ChatRequest, record: RequestRecord) -> None:
        """A whole answer relayed in the client's own dialect is decoded only for its usage:
        with answer hooks, the request is translated instead, so the answer's text is read.
        A request holding a part only its own dialect carries cannot be: refused (fail
        closed)."""
        native = request.native
        if native is None:
            return
        reading = [h for h in self.answers if h.check is not json_schema
                   or _schema_of(request) is not None]
        if not reading:
            return
        if native.untranslatable is not None:
            message = (f"Refused by the guardrail '{reading[0].name}': the request holds "
                       f"'{native.untranslatable}', so its answer would be relayed unread and "
                       "the answer guardrails could not check it.")
            record.governance = f"refused: {message}"
            raise PolicyViolation(message)
        request.native = None

    async def response(self, response: ChatResponse, request: ChatRequest, group: str,
                       record: RequestRecord) -> None:
        """Each choice's text and each of its tool calls' arguments (a secret the model writes
        into a call is as much an answer as its text)."""
        for hook in self.answers:
            for choice in response.choices:
                message = choice.message
                if isinstance(message.content, str) and message.content:
                    verdict = await _run(hook, "response", group, message.content, request,
                                         record)
                    if isinstance(verdict, Redacted):
                        message.content = verdict.text
                        response.raw = response.native = None  # the surface encodes it
                        _note(record, f"guardrail:{hook.name}:redacted {verdict.note}")
                for call in message.tool_calls or ():
                    function = call.function
                    if function is None or not function.arguments:
                        continue
                    verdict = await _run(hook, "response", group, function.arguments,
                                         request, record)
                    if isinstance(verdict, Redacted):
                        function.arguments = verdict.text
                        response.raw = response.native = None
                        _note(record, f"guardrail:{hook.name}:redacted {verdict.note}")

    def stream(self, request: ChatRequest, group: str, record: RequestRecord
               ) -> StreamGuard | None:
        return StreamGuard(self.answers, request, group, record) if self.answers else None


Part = tuple[int, int]
"""A text a stream builds up: (choice index, -1) for the choice's text, (choice index, tool
call index) for a tool call's arguments."""
_TEXT = -1


def _parts(batch: list[ChatChunk]) -> Iterator[tuple[Part, str]]:
    for chunk in batch:
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                yield (choice.index, _TEXT), delta.content
            for position, call in enumerate(delta.tool_calls or ()):
                if call.function is not None and call.function.arguments:
                    index = call.index if call.index is not None else position
                    yield (choice.index, index), call.function.arguments


class StreamGuard:
    """The answer hooks over a stream. Batches are released to the client only once every
    incremental hook has checked their text (a window of ``window_chars`` new characters,
    with the end of the window before it, so a value split between two windows is still
    seen whole); with any ``hold`` hook, only at the upstream's end, once the whole text
    passed. A choice's text and each tool call's arguments are checked apart, each as it
    streams. A refusal raises; the stream then ends with the dialect's error event."""

    OVERLAP = 64

    def __init__(self, hooks: Sequence[Hook], request: ChatRequest, group: str,
                 record: RequestRecord) -> None:
        self._incremental = tuple(h for h in hooks if h.stream != "hold")
        self._hold = tuple(h for h in hooks if h.stream == "hold")
        self._window = min((h.window_chars for h in self._incremental), default=0)
        self._request, self._group, self._record = request, group, record
        self._pending: list[list[ChatChunk]] = []
        self._new: dict[Part, str] = {}
        """Per part: text not yet checked by the incremental hooks."""
        self._tail: dict[Part, str] = {}
        """Per part: the end of the text they checked last."""
        self._whole: dict[Part, list[str]] = {}
        """Per part: the whole text, for the hold hooks."""

    async def feed(self, batch: list[ChatChunk]) -> list[list[ChatChunk]]:
        """The batches the client may have now (none while they are held)."""
        self._pending.append(batch)
        for part, text in _parts(batch):
            if self._incremental:
                self._new[part] = self._new.get(part, "") + text
            if self._hold:
                self._whole.setdefault(part, []).append(text)
        if not self._incremental or (sum(map(len, self._new.values())) < self._window
                                     and not _finishes(batch)):
            return []
        await self._check_window()
        if self._hold:
            return []
        released, self._pending = self._pending, []
        return released

    async def end(self) -> list[list[ChatChunk]]:
        """At the upstream's end: the rest, once checked."""
        await self._check_window()
        redacted = False
        for hook in self._hold:
            for part, pieces in sorted(self._whole.items()):
                verdict = await _run(hook, "response", self._group, "".join(pieces),
                                     self._request, self._record)
                if isinstance(verdict, Redacted):
                    self._whole[part] = [verdict.text]
                    self._replace(part, verdict.text)
                    _note(self._record, f"guardrail:{hook.name}:redacted {verdict.note}")
                    redacted = True
        if redacted:
            # The whole held stream is encoded in the client's dialect, none of it relayed:
            # an upstream's closing events repeat the whole text (Responses'
            # output_text.done, response.completed), which a relay would send unredacted.
            for batch in self._pending:
                for chunk in batch:
                    chunk.raw = chunk.native = None
        released, self._pending = self._pending, []
        return released

    async def _check_window(self) -> None:
        for part, text in sorted(self._new.items()):
            if not text:
                continue
            window = self._tail.get(part, "") + text
            for hook in self._incremental:
                verdict = await _run(hook, "response", self._group, window, self._request,
                                     self._record)
                if isinstance(verdict, Redacted):  # config refuses it: fail closed
                    raise ServiceUnavailable(f"The guardrail '{hook.name}' redacted a window "
                                             "of a stream it does not hold; it fails closed.")
            self._tail[part] = window[-self.OVERLAP:]
        self._new.clear()

    def _replace(self, part: Part, text: str) -> None:
        """Part ``part``'s held text becomes ``text``: all of it in its first chunk, none in
        the others; those chunks' upstream bytes no longer match them."""
        first = True
        index, call_index = part
        for batch in self._pending:
            for chunk in batch:
                for choice in chunk.choices:
                    if choice.index != index:
                        continue
                    if call_index == _TEXT:
                        if not choice.delta.content:
                            continue
                        choice.delta.content = text if first else None
                    else:
                        function = _call_of(choice.delta.tool_calls, call_index)
                        if function is None:
                            continue
                        function.arguments = text if first else ""
                    first = False
                    chunk.raw = chunk.native = None


def _call_of(calls: list[ToolCall] | None, index: int) -> FunctionCall | None:
    """The function of tool call ``index`` in a delta, when it carries arguments."""
    for position, call in enumerate(calls or ()):
        if (call.index if call.index is not None else position) == index and \
                call.function is not None and call.function.arguments:
            return call.function
    return None


async def _run(hook: Hook, stage: str, group: str, text: str, request: ChatRequest,
               record: RequestRecord) -> Redacted | None:
    """The hook's verdict under its time budget and fail mode; raises on a refusal."""
    try:
        async with asyncio.timeout(hook.timeout_s):
            verdict = await hook.check(stage, group, text, request)
    except Exception as exc:  # late, unreachable, broken, or an answer we cannot read
        why = f"no answer within {hook.timeout_s:g} s" if isinstance(
            exc, TimeoutError) else f"{type(exc).__name__}"
        if hook.fail_open:
            log.warning("guardrail '%s' failed (%s): failing open", hook.name, why)
            _note(record, f"guardrail:{hook.name}:failed-open")
            return None
        log.warning("guardrail '%s' failed (%s): failing closed", hook.name, why,
                    exc_info=not isinstance(exc, TimeoutError))
        _note(record, f"guardrail:{hook.name}:failed-closed")
        raise ServiceUnavailable(
            f"The guardrail '{hook.name}' could not check the {stage} ({why}), and it "
            "fails closed; retry shortly.") from None
    if isinstance(verdict, str):
        message = f"Refused by the guardrail '{hook.name}' ({stage}): {verdict}"
        record.governance = f"refused: {message}"
        raise PolicyViolation(message)
    return verdict


def _finishes(batch: list[ChatChunk]) -> bool:
    return any(choice.finish_reason for chunk in batch for choice in chunk.choices)


def _note(record: RequestRecord, note: str) -> None:
    record.governance = f"{record.governance} {note}" if record.governance else note


def _prompt(request: ChatRequest) -> str:
    """What a governance policy scans too: message text and tool-call arguments."""
    return "\n".join(texts(request.messages))
