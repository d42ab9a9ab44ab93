"""'cascade' groups: ask the cheapest step first, judge its answer, and escalate to the next
step only when a judge says so (docs/routing.md#cascade).

A step is one deployment, called through its own attempt loop (retries, circuit breakers);
a step that fails altogether escalates like a rejected answer, and the last step's answer is
kept unjudged. Every upstream call — each step, a second sample, a verifier's yes/no — is
billed: each becomes a :class:`~polyroute.model.record.Charge` priced at its own deployment
when the request settles, and the ledger row's cost is their sum.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from polyroute.autorouter import judges
from polyroute.config import Deployment
from polyroute.config.compiled import CascadeJudge, CascadePolicy
from polyroute.engine.estimate import answer_units, estimate_input_tokens
from polyroute.errors import (
    AllDeploymentsFailed,
    GatewayError,
    InvalidRequest,
    NoDeploymentAvailable,
    RateLimited,
    UpstreamError,
)
from polyroute.model.chat import ChatRequest, ChatResponse, Message
from polyroute.model.record import Charge
from polyroute.model.usage import Usage

Call = Callable[[Sequence[Deployment], ChatRequest], Awaitable[tuple[ChatResponse, Deployment]]]
"""One upstream call through an attempt loop over ``candidates``: the answer and who gave it."""

_TRUE = msgspec.Raw(b"true")
STEP_FAILED = (UpstreamError, AllDeploymentsFailed, NoDeploymentAvailable, RateLimited)
"""A call that found no answer (its deployment down, its circuit open, its own quota used
up): a step escalates, a judge's extra call counts as a rejection."""
_STREAM_FIELDS = ("stream", "stream_options")
_VERIFIER_MAX_TOKENS = 4
MAX_CHECK_NAME = 64


@dataclass(slots=True)
class CascadeResult:
    response: ChatResponse
    deployment: Deployment
    trail: list[str] = field(default_factory=list)
    """Per step: ``<deployment>:<verdict>`` with the judges' readings, for the header."""
    charges: list[Charge] = field(default_factory=list)
    escalations: int = 0
    """Steps passed over (rejected or failed) before the answer kept."""


def worst_case_calls(policy: CascadePolicy, steps: int) -> int:
    """The most upstream calls one request can make: every judged step with its extra
    samples and verifier questions, and the last step once."""
    return policy.calls_per_step * (steps - 1) + 1


def check_name(request: ChatRequest) -> str | None:
    """``metadata.polyroute_check``: which configured regex pattern the answer must match."""
    if request.passthrough is None:
        return None
    raw = request.passthrough.get("metadata")
    if raw is None or b"polyroute_check" not in bytes(raw):
        return None
    try:
        metadata = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    value = metadata.get("polyroute_check") if isinstance(metadata, dict) else None
    if value is not None and (not isinstance(value, str) or len(value) > MAX_CHECK_NAME):
        raise InvalidRequest("metadata.polyroute_check must name a configured pattern.",
                             param="metadata.polyroute_check")
    return value


class Cascade:
    def __init__(self, policy: CascadePolicy, steps: Sequence[Deployment], call: Call,
                 verifiers: Callable[[str], Sequence[Deployment]]) -> None:
        self._policy = policy
        self._steps = list(steps)
        self._call = call
        self._verifiers = verifiers
        """The deployments of a verifier group, in its own routing order; none when the
        caller may not send its prompt there."""
        self.charges: list[Charge] = []
        """Every call's usage so far: read by the caller even when the cascade fails (the
        steps it paid for before the last one failed are billed too)."""

    async def run(self, request: ChatRequest) -> CascadeResult:
        check = check_name(request)
        for judge in self._policy.judges:
            if judge.kind == "regex" and check is not None \
                    and check not in dict(judge.patterns):
                raise InvalidRequest(
                    f"metadata.polyroute_check names no pattern of this model's cascade "
                    f"(it has {', '.join(name for name, _ in judge.patterns)}).",
                    param="metadata.polyroute_check")
        upstream = _one_shot(request, logprobs=any(
            j.kind == "logprobs" for j in self._policy.judges))
        trail: list[str] = []
        charges = self.charges
        last_error: GatewayError | None = None
        for i, step in enumerate(self._steps):
            final = i == len(self._steps) - 1
            try:
                response, dep = await self._call([step], upstream)
            except STEP_FAILED as exc:
                if final:
                    raise
                trail.append(f"{step.name}:failed")
                last_error = exc
                continue
            charges.append(_charge(dep, response, upstream))
            if final:
                trail.append(f"{dep.name}:final")
                return self._result(request, response, dep, trail, charges)
            kept, readings = await self._judge(upstream, response, step, check, charges)
            trail.append(f"{dep.name}:{'accept' if kept else 'escalate'}"
                         + (f"({','.join(readings)})" if readings else ""))
            if kept:
                return self._result(request, response, dep, trail, charges)
        raise last_error or AssertionError("a cascade has at least two steps")

    def _result(self, request: ChatRequest, response: ChatResponse, dep: Deployment,
                trail: list[str], charges: list[Charge]) -> CascadeResult:
        if not request.logprobs:
            response.raw = None  # asked for by the judge, not the client: encode without them
        return CascadeResult(response, dep, trail, charges, len(trail) - 1)

    async def _judge(self, request: ChatRequest, response: ChatResponse, step: Deployment,
                     check: str | None, charges: list[Charge]) -> tuple[bool, list[str]]:
        """Every judge must pass the answer; the free ones (structure) run first, and a
        failing one spares the calls of the rest."""
        text = judges.answer_text(response)
        readings: list[str] = []
        for judge in sorted(self._policy.judges, key=_price_order):
            passed, reading = await self._one(judge, request, response, text, step, check,
                                              charges)
            readings.append(reading)
            if not passed:
                return False, readings
        return True, readings

    async def _one(self, judge: CascadeJudge, request: ChatRequest, response: ChatResponse,
                   text: str, step: Deployment, check: str | None,
                   charges: list[Charge]) -> tuple[bool, str]:
        kind = judge.kind
        if kind == "json":
            ok = judges.is_json(text)
            return ok, f"json={'ok' if ok else 'invalid'}"
        if kind == "regex":
            patterns = dict(judge.patterns)
            pattern = patterns.get(check or "default")
            if pattern is None:
                return True, "regex=none"
            ok = judges.matches(pattern, text)
            return ok, f"regex={'ok' if ok else 'no'}"
        if kind == "logprobs":
            confidence = judges.token_confidence(response.raw)
            if confidence is None:  # cannot tell: the safe side is the stronger model
                return False, "logprobs=none"
            return confidence >= judge.threshold, f"logprobs={confidence:.3f}"
        if kind == "agreement":
            try:
                second, dep = await self._call([step], request)
            except STEP_FAILED:
                return False, "agreement=failed"
            charges.append(_charge(dep, second, request))
            similarity = judges.agreement(text, judges.answer_text(second))
            return similarity >= judge.threshold, f"agreement={similarity:.3f}"
        return await self._verify(judge, request, text, charges)

    async def _verify(self, judge: CascadeJudge, request: ChatRequest, text: str,
                      charges: list[Charge]) -> tuple[bool, str]:
        assert judge.verifier is not None  # checked when the config loads
        question = judges.YES_NO_QUESTION.format(question=_question(request), answer=text)
        ask = ChatRequest(messages=[Message(role="user", content=question)],
                          model=judge.verifier, max_tokens=_VERIFIER_MAX_TOKENS,
                          temperature=0.0)
        candidates = self._verifiers(judge.verifier)
        if not candidates:  # the caller's governance policy keeps its prompt from there
            return False, "verifier=governed"
        try:
            reply, dep = await self._call(candidates, ask)
        except STEP_FAILED:
            return False, "verifier=failed"
        charges.append(_charge(dep, reply, ask))
        yes = judges.verifier_says_yes(judges.answer_text(reply))
        return yes, f"verifier={'yes' if yes else 'no'}"


def _price_order(judge: CascadeJudge) -> int:
    return {"json": 0, "regex": 0, "logprobs": 1, "agreement": 2}.get(judge.kind, 3)


def _one_shot(request: ChatRequest, logprobs: bool) -> ChatRequest:
    """The request as each step is asked it: whole (a cascade judges whole answers) and with
    token log-probabilities when a judge reads them."""
    passthrough = request.passthrough
    if passthrough is not None:
        passthrough = {k: v for k, v in passthrough.items() if k not in _STREAM_FIELDS}
        if logprobs:
            passthrough["logprobs"] = _TRUE
    native = request.native
    if native is not None and native.untranslatable is None:
        # A natively relayed answer is kept as the upstream's bytes, undecoded: the judges
        # need its text, so the steps are asked through the canonical model instead.
        native = None
    elif native is not None and any(k in native.fields for k in _STREAM_FIELDS):
        # Anthropic's and Responses' clients say "stream" in the body: forwarded as it came,
        # a whole answer's call would get events back. Without the field (and without the
        # exact bytes, which hold it) the adapter rebuilds the body from the other fields.
        native = msgspec.structs.replace(
            native, body=b"",
            fields={k: v for k, v in native.fields.items() if k not in _STREAM_FIELDS})
    return msgspec.structs.replace(
        request, stream=False, stream_options=None, passthrough=passthrough, native=native,
        logprobs=True if logprobs else request.logprobs)


def _question(request: ChatRequest) -> str:
    parts = []
    for message in request.messages:
        if message.role != "user" or message.content is None:
            continue
        if isinstance(message.content, str):
            parts.append(message.content)
        else:
            parts += [p.text for p in message.content if p.type == "text" and p.text]
    return "\n\n".join(parts)


def _charge(dep: Deployment, response: ChatResponse, request: ChatRequest) -> Charge:
    if response.usage is not None:
        return Charge(dep.vendor, dep.model, response.usage)
    prompt, output = estimate_input_tokens(request), (answer_units(response) + 3) // 4
    return Charge(dep.vendor, dep.model, Usage(prompt_tokens=prompt, completion_tokens=output,
                                               total_tokens=prompt + output), estimated=True)


def total_usage(charges: Sequence[Charge]) -> Usage:
    prompt = sum(c.usage.prompt_tokens for c in charges)
    output = sum(c.usage.completion_tokens for c in charges)
    return Usage(prompt_tokens=prompt, completion_tokens=output, total_tokens=prompt + output)
