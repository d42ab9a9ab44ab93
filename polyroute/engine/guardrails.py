"""Guardrail hooks: checks that run on the prompt before it is routed and on a whole answer
before the client gets it, each with its own time budget and its own rule for when it cannot
answer (fail open: let the request through; fail closed: refuse with 503).

A hook is ``check(stage, model, text) -> reason to refuse | None``. The built-in external one
is a webhook (``webhook``); its HTTP call is handed in by the composition root, since the
engine knows no web framework. Governance policies (``governance.py``) run first, so a
webhook sees a prompt whose personal data a policy redacted.

Not built (docs/notes.md): checks of a streamed answer (incremental, or holding the stream
until a check passes).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import msgspec

from polyroute.config.compiled import GuardrailSettings
from polyroute.errors import PolicyViolation, ServiceUnavailable
from polyroute.model.chat import ChatRequest, ChatResponse
from polyroute.model.record import RequestRecord

log = logging.getLogger("polyroute.guardrails")

Check = Callable[[str, str, str, ChatRequest], Awaitable[str | None]]
"""(stage, model group, text, the request) → why the text is refused, or None."""
Post = Callable[[str, bytes, float], Awaitable[bytes]]
"""(url, JSON body, timeout in seconds) → the response body of a 2xx; raises otherwise."""


@dataclass(frozen=True, slots=True)
class Hook:
    name: str
    check: Check
    stages: frozenset[str]
    timeout_s: float
    fail_open: bool


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


async def json_schema(stage: str, model: str, text: str, request: ChatRequest) -> str | None:
    """A structured output must be valid against the schema the client asked for."""
    schema = request.response_format.schema if request.response_format else None
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


def hooks_from(settings: Sequence[GuardrailSettings], post: Post) -> tuple[Hook, ...]:
    return tuple(Hook(g.name, json_schema if g.type == "json_schema" else
                      webhook(g.url, g.timeout_s, post), g.stages, g.timeout_s, g.fail_open)
                 for g in settings)


class Guardrails:
    def __init__(self, hooks: Sequence[Hook]) -> None:
        self._request = tuple(h for h in hooks if "request" in h.stages)
        self._response = tuple(h for h in hooks if "response" in h.stages)

    async def request(self, request: ChatRequest, group: str, record: RequestRecord) -> None:
        if self._request:
            await self._run(self._request, "request", group, _prompt(request), request,
                            record)

    async def response(self, response: ChatResponse, request: ChatRequest, group: str,
                       record: RequestRecord) -> None:
        if self._response:
            text = "\n".join(c.message.content for c in response.choices
                             if isinstance(c.message.content, str))
            await self._run(self._response, "response", group, text, request, record)

    async def _run(self, hooks: Sequence[Hook], stage: str, group: str, text: str,
                   request: ChatRequest, record: RequestRecord) -> None:
        for hook in hooks:
            try:
                async with asyncio.timeout(hook.timeout_s):
                    reason = await hook.check(stage, group, text, request)
            except Exception as exc:  # late, unreachable, or an answer we cannot read
                why = f"no answer within {hook.timeout_s:g} s" if isinstance(
                    exc, TimeoutError) else f"{type(exc).__name__}"
                if hook.fail_open:
                    log.warning("guardrail '%s' failed (%s): failing open", hook.name, why)
                    _note(record, f"guardrail:{hook.name}:failed-open")
                    continue
                _note(record, f"guardrail:{hook.name}:failed-closed")
                raise ServiceUnavailable(
                    f"The guardrail '{hook.name}' could not check the {stage} ({why}), and it "
                    "fails closed; retry shortly.") from None
            if reason is not None:
                message = f"Refused by the guardrail '{hook.name}' ({stage}): {reason}"
                record.governance = f"refused: {message}"
                raise PolicyViolation(message)


def _note(record: RequestRecord, note: str) -> None:
    record.governance = f"{record.governance} {note}" if record.governance else note


def _prompt(request: ChatRequest) -> str:
    parts: list[str] = []
    for m in request.messages:
        if isinstance(m.content, str):
            parts.append(m.content)
        elif m.content is not None:
            parts.extend(p.text for p in m.content if p.text)
    return "\n".join(parts)
