"""Data governance, applied to a route before anything is admitted or sent: the candidates a
caller's policies allow (vendor, cloud, region, tags), then the data classes its prompt
holds (a class may go only to deployments tagged for it; otherwise the request is refused,
or the values are replaced by placeholders). A refusal names the scope and the rule.

Only a principal with policies gets here; the common case costs one truth test.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import msgspec

from polyroute.config import Deployment
from polyroute.engine.router import Route
from polyroute.errors import PolicyViolation, ServiceUnavailable
from polyroute.guardrails.detectors import CLASSES, detect
from polyroute.guardrails.redact import Redactor, StreamRestorer
from polyroute.model.chat import ChatChunk, ChatRequest, ChatResponse, ContentPart, Message
from polyroute.model.governance import DataPolicy
from polyroute.model.record import RequestRecord

log = logging.getLogger("polyroute.guardrails")
_encode = msgspec.json.Encoder().encode


def govern(route: Route, request: ChatRequest | None,
           policies: Sequence[tuple[str, DataPolicy]], record: RequestRecord) -> Route:
    """The route the policies allow (its ``redactor`` set when values are to be restored in
    the answer); raises PolicyViolation."""
    candidates = list(route.candidates)
    for scope, policy in policies:
        allowed = [d for d in candidates if _refusal(d, policy) is None]
        if not allowed:
            reasons = "; ".join(f"{d.name}: {_refusal(d, policy)}" for d in candidates[:4])
            raise _refused(record, f"Refused by the governance policy of {scope_name(scope)}: "
                           f"no deployment of model '{route.group}' is allowed ({reasons}).")
        candidates = allowed
    notes = [",".join(scope for scope, _ in policies)]
    if request is not None and request.native is not None \
            and request.native.untranslatable is not None \
            and any(p.deny_terms or p.max_prompt_chars or p.data_classes for _, p in policies):
        # Fail closed: the part would be forwarded as it came, unread by the checks below.
        raise _refused(record, f"Refused by the governance policy of "
                       f"{scope_name(policies[0][0])}: the request holds "
                       f"'{request.native.untranslatable}', which polyroute forwards without "
                       f"reading it, so the policy's content rules cannot check it.")
    if request is not None and any(p.deny_terms or p.max_prompt_chars for _, p in policies):
        _guard(route, request, policies, record)
    redactor: Redactor | None = None
    rules = [(scope, name, rule) for scope, policy in policies
             for name, rule in policy.data_classes.items()]
    if rules and request is not None:
        kinds = frozenset().union(*(CLASSES[name] for _, name, _ in rules))
        try:
            found = {f.kind for text in texts(request.messages) for f in detect(text, kinds)}
        except Exception:  # a detector that breaks fails closed, as a guardrail would
            log.exception("data-class detectors failed on %s", record.request_id)
            record.governance = "data_classes:failed-closed"
            raise ServiceUnavailable("The data-class detectors could not check the prompt, "
                                     "and the governance policy fails closed.") from None
        redact: set[str] = set()
        restore = False
        for scope, name, rule in rules:
            hit = found & CLASSES[name]
            if not hit:
                continue
            tagged = [d for d in candidates if any(_has_tag(d, t) for t in rule.allow_tags)]
            if tagged:
                candidates = tagged
                notes.append(f"{name}:routed")
            elif rule.otherwise == "refuse":
                raise _refused(
                    record, f"Refused by the governance policy of {scope_name(scope)}: rule "
                    f"data_classes.{name} — the prompt holds {', '.join(sorted(hit))}, and no "
                    f"deployment of model '{route.group}' is tagged "
                    f"{' or '.join(rule.allow_tags) or '(none allowed)'}.")
            else:
                redact |= hit
                restore = restore or rule.restore
        if redact:
            redactor = Redactor(frozenset(redact))
            _redact(request, redactor)
            notes.append("redacted " + " ".join(f"{k}={n}" for k, n in
                                                sorted(redactor.counts.items())))
            if not restore:
                redactor = None
    if any(p.retain_bodies for _, p in policies):
        notes.append("retain_bodies")
    record.governance = " ".join(notes)
    if len(candidates) != len(route.candidates) or redactor is not None:
        route = replace(route, candidates=candidates, redactor=redactor)
    return route


def restore_response(response: ChatResponse, redactor: Redactor) -> None:
    """Put the redacted values back into a whole answer (its upstream bytes no longer
    match it, so they are dropped and the surface encodes it)."""
    for choice in response.choices:
        message = choice.message
        if isinstance(message.content, str):
            message.content = redactor.restore(message.content)
        if message.tool_calls:
            for call in message.tool_calls:
                if call.function is not None and call.function.arguments:
                    call.function.arguments = redactor.restore(call.function.arguments)
    response.raw = response.native = None


def stream_restorer(redactor: Redactor) -> Callable[[list[ChatChunk]], list[ChatChunk]]:
    """Restores the values in a stream's text, per choice; a placeholder split between
    chunks is held back until it is whole (at most a few characters)."""
    restorers: dict[int, StreamRestorer] = {}

    def rewrite(batch: list[ChatChunk]) -> list[ChatChunk]:
        for chunk in batch:
            for choice in chunk.choices:
                restorer = restorers.get(choice.index)
                if restorer is None:
                    restorer = restorers[choice.index] = StreamRestorer(redactor)
                text = choice.delta.content
                if text:
                    choice.delta.content = restorer.feed(text)
                    chunk.raw = None
                if choice.finish_reason:
                    tail = restorer.flush()
                    if tail:
                        choice.delta.content = (choice.delta.content or "") + tail
                        chunk.raw = None
        return batch

    return rewrite


def _guard(route: Route, request: ChatRequest, policies: Sequence[tuple[str, DataPolicy]],
           record: RequestRecord) -> None:
    """The deny-list and size-limit guardrails of the prompt."""
    parts = list(texts(request.messages))
    size = sum(len(t) for t in parts)
    lowered = "\n".join(parts).lower()
    for scope, policy in policies:
        limit = policy.max_prompt_chars
        if limit is not None and size > limit:
            raise _refused(record, f"Refused by the governance policy of {scope_name(scope)}: "
                           f"rule max_prompt_chars — the prompt has {size} characters, more "
                           f"than {limit}.")
        for term in policy.deny_terms:
            if term.lower() in lowered:
                raise _refused(record, f"Refused by the governance policy of "
                               f"{scope_name(scope)}: rule deny_terms — the prompt contains "
                               f"a denied term ({term!r}).")


def _refused(record: RequestRecord, message: str) -> PolicyViolation:
    record.governance = f"refused: {message}"  # the ledger and the audit log name the rule
    return PolicyViolation(message)


_SCOPES = {"k": "key", "t": "team", "o": "organisation"}


def scope_name(scope: str) -> str:
    kind, _, name = scope.partition(":")
    return f"{_SCOPES.get(kind, kind)} '{name}'"


def _refusal(d: Deployment, p: DataPolicy) -> str | None:
    """The rule of ``p`` that refuses deployment ``d``, or None."""
    cloud, region = d.cloud, d.region  # the deployment's keys, else its tags (config/load)
    if p.vendors is not None and d.vendor not in p.vendors:
        return f"vendor '{d.vendor}' is not in vendors"
    if d.vendor in p.deny_vendors:
        return f"vendor '{d.vendor}' is in deny_vendors"
    if p.clouds is not None and cloud not in p.clouds:
        return f"cloud '{cloud}' is not in clouds"
    if cloud is not None and cloud in p.deny_clouds:
        return f"cloud '{cloud}' is in deny_clouds"
    if p.regions is not None and region not in p.regions:
        return f"region '{region}' is not in regions"
    if region is not None and region in p.deny_regions:
        return f"region '{region}' is in deny_regions"
    for tag in p.require_tags:
        if not _has_tag(d, tag):
            return f"it lacks the tag '{tag}' of require_tags"
    for tag in p.deny_tags:
        if _has_tag(d, tag):
            return f"it carries the tag '{tag}' of deny_tags"
    return None


def _has_tag(d: Deployment, tag: str) -> bool:
    name, eq, value = tag.partition("=")
    if not eq:
        return name in d.tags and d.tags[name].lower() not in ("false", "no", "0", "")
    return d.tags.get(name) == value


def texts(messages: Sequence[Message]) -> Iterator[str]:
    for m in messages:
        if isinstance(m.content, str):
            yield m.content
        elif m.content is not None:
            for part in m.content:
                if part.text:
                    yield part.text
        if m.tool_calls:
            for call in m.tool_calls:
                if call.function is not None and call.function.arguments:
                    yield call.function.arguments


def _redact(request: ChatRequest, redactor: Redactor) -> None:
    """Replace the values in every message, and in the client's own bytes where they would
    be relayed as they came."""
    for m in request.messages:
        if isinstance(m.content, str):
            m.content = redactor.redact(m.content)
        elif m.content is not None:
            m.content = [msgspec.structs.replace(p, text=redactor.redact(p.text))
                         if isinstance(p, ContentPart) and p.text else p for p in m.content]
        if m.tool_calls:
            for call in m.tool_calls:
                if call.function is not None and call.function.arguments:
                    call.function.arguments = redactor.redact(call.function.arguments)
    if request.passthrough is not None and "messages" in request.passthrough:
        request.passthrough["messages"] = msgspec.Raw(_encode(request.messages))
    # A request kept in its own dialect (Anthropic, Gemini, Responses, Bedrock) would be
    # forwarded as the client's bytes, where a value may hide behind any JSON escape: it is
    # translated from the redacted messages instead.
    request.native = None
