"""Governance over the media and embeddings endpoints: the texts a media request carries to
the vendor (an image prompt, speech input, a rerank query and documents, moderation input, a
transcription prompt, an upload's file name) and an embeddings request's input meet the same
prompt-side policy as a chat prompt, and a transcript or translation the same answer checks
as a chat answer.

The policy code reads chat requests, so a media request is shown to it as one: a user message
per text (``prompt_of``); what a policy redacted is put back in its place (``put_back``). What
polyroute cannot read at all (an uploaded file's content, an image to moderate) is refused to
every rule that would have to read it, unless that rule opts in (``uninspectable: allow``):
fail closed, as for a part a same-dialect relay forwards unread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import msgspec

from polyroute.engine.governance import scope_name
from polyroute.engine.guardrails import Checks
from polyroute.errors import PolicyViolation
from polyroute.model.chat import ChatRequest, ChatResponse, Choice, Message
from polyroute.model.embeddings import EmbeddingRequest
from polyroute.model.governance import DataPolicy
from polyroute.model.media import MediaRequest, MediaResponse, MediaText, Place
from polyroute.model.record import RequestRecord

EMBEDDINGS = "embeddings"
"""The endpoint name of an embeddings request's view (``embedding_view``)."""
TRANSCRIPTS = frozenset({"audio.transcriptions", "audio.translations"})
"""The media endpoints whose answer is text a model wrote."""
_TEXT_TYPES = ("text/plain", "application/x-subrip", "text/vtt")

_encode = msgspec.json.Encoder().encode


def prompt_of(request: MediaRequest) -> ChatRequest:
    """The request as the policy code reads a chat prompt: one user message per text."""
    return ChatRequest(model=request.model,
                       messages=[Message(role="user", content=t.text) for t in request.texts])


def put_back(request: MediaRequest, prompt: ChatRequest) -> None:
    """Each text ``prompt``'s messages now hold (redacted by a policy) into its place."""
    texts = [dataclasses.replace(t, text=m.content) if isinstance(m.content, str) else t
             for t, m in zip(request.texts, prompt.messages, strict=True)]
    changed = [t for t, old in zip(texts, request.texts, strict=True) if t.text != old.text]
    if not changed:
        return
    request.texts = tuple(texts)
    if request.form is not None:
        fields, files = list(request.form.fields), list(request.form.files)
        for t in changed:
            kind, index = t.place
            assert isinstance(index, int)
            if kind == "field":
                fields[index] = (fields[index][0], t.text)
            else:
                files[index] = dataclasses.replace(files[index], filename=t.text)
        request.form = dataclasses.replace(request.form, fields=tuple(fields),
                                           files=tuple(files))
    if request.fields is not None:
        # A JSON body is forwarded field by field as the client sent it: a changed field is
        # decoded, changed at its paths and encoded again; the others stay as they came.
        fields_out = dict(request.fields)
        for name in {t.place[0] for t in changed}:
            assert isinstance(name, str)
            value = msgspec.json.decode(fields_out[name])
            for t in changed:
                if t.place[0] == name:
                    value = _set(value, t.place[1:], t.text)
            fields_out[name] = msgspec.Raw(_encode(value))
        request.fields = fields_out


def embedding_view(request: EmbeddingRequest) -> MediaRequest:
    """An embeddings request as governance reads a media one: each input string a text, its
    token arrays unread (polyroute has no tokenizer to read them back)."""
    raw = request.input
    items = [raw] if isinstance(raw, str) else raw
    texts = tuple(MediaText(("input",) if isinstance(raw, str) else ("input", i), item)
                  for i, item in enumerate(items) if isinstance(item, str))
    tokens = next((i for i, item in enumerate(items) if not isinstance(item, str)), None)
    return MediaRequest(EMBEDDINGS, request.model,
                        fields={"input": msgspec.Raw(_encode(raw))}, texts=texts,
                        unread=None if tokens is None else f"token ids (input[{tokens}])")


def embedding_of(request: EmbeddingRequest, view: MediaRequest,
                 sent: object) -> EmbeddingRequest:
    """``request`` with the input ``view`` holds now: itself, unless a policy redacted it
    (``put_back`` gave the view new ``fields``, other than ``sent``)."""
    if view.fields is sent or view.fields is None:
        return request
    raw = view.fields["input"]
    passthrough = request.passthrough
    if passthrough is not None:  # the client's fields are what goes out: the input too
        passthrough = {**passthrough, "input": raw}
    return msgspec.structs.replace(request, input=msgspec.json.decode(raw),
                                   passthrough=passthrough)


def _set(value: Any, path: Place, text: str) -> Any:
    if not path:
        return text
    value[path[0]] = _set(value[path[0]], path[1:], text)
    return value


def refuse_unread(request: MediaRequest, policies: Sequence[tuple[str, DataPolicy]],
                  checks: Checks | None, record: RequestRecord) -> None:
    """Raises PolicyViolation when the request carries what polyroute cannot read and a rule
    that would have to read it (a policy's content rules, a prompt guardrail) has not opted
    in with ``uninspectable: allow``; or when a transcript would come back as events the
    answer checks cannot read."""
    if request.unread is not None:
        for scope, policy in policies:
            rules = [name for name, on in (("data_classes", policy.data_classes),
                                           ("deny_terms", policy.deny_terms),
                                           ("max_prompt_chars", policy.max_prompt_chars))
                     if on]
            if rules and policy.uninspectable != "allow":
                raise _refused(record, f"Refused by the governance policy of "
                               f"{scope_name(scope)}: the request carries {request.unread}, "
                               f"which polyroute cannot read, and the policy's "
                               f"{', '.join(rules)} must read what is sent (fail closed; "
                               f"the policy's \"uninspectable\": \"allow\" lets such "
                               f"requests through).")
        for hook in checks.prompts if checks is not None else ():
            if not hook.allow_uninspectable:
                raise _refused(record, f"Refused by the guardrail '{hook.name}' (request): the "
                               f"request carries {request.unread}, which polyroute cannot "
                               f"read, so the guardrail cannot check it (fail closed; its "
                               f"uninspectable: allow lets such requests through).")
    if request.endpoint in TRANSCRIPTS and checks is not None and checks.answers \
            and request.form is not None and request.form.field("stream") == "true":
        raise _refused(record, f"Refused by the guardrail '{checks.answers[0].name}' "
                       "(response): a streamed transcript comes as events the answer "
                       "guardrails do not read; ask for it whole (stream=false).")


async def checked_answer(response: MediaResponse, request: MediaRequest, checks: Checks,
                         group: str, record: RequestRecord) -> MediaResponse:
    """A transcript or translation after the answer guardrails (and a policy's
    ``answer_data_classes``): refused (raises), redacted, or as it came."""
    if request.endpoint not in TRANSCRIPTS or not checks.answers:
        return response
    kind = response.content_type.split(";")[0].strip().lower()
    doc: Any = None
    if kind == "application/json":
        try:
            doc = msgspec.json.decode(response.body)
        except msgspec.DecodeError:
            kind = "JSON that does not parse"
    if doc is not None:
        places = _transcript_places(doc)
        texts = [_get(doc, place) for place in places]
    elif kind in _TEXT_TYPES:
        places, texts = [()], [response.body.decode("utf-8", "replace")]
    else:  # fail closed: an answer the checks cannot read does not reach the client
        raise _refused(record, f"Refused by the guardrail '{checks.answers[0].name}' "
                       f"(response): the answer came as {kind}, which the answer guardrails "
                       "do not read.")
    view = ChatResponse(choices=[Choice(index=i, message=Message(role="assistant", content=t))
                                 for i, t in enumerate(texts)])
    await checks.response(view, prompt_of(request), group, record)
    redacted = [str(c.message.content) for c in view.choices]
    if redacted == texts:
        return response
    if doc is None:
        return dataclasses.replace(response, body=redacted[0].encode())
    for place, text in zip(places, redacted, strict=True):
        _set(doc, place, text)
    doc.pop("words", None)  # one word each: a value split between words cannot be redacted
    return dataclasses.replace(response, body=_encode(doc))


def _transcript_places(doc: Any) -> list[Place]:
    """Where a JSON transcript holds text: ``text``, and each segment's (verbose_json)."""
    if not isinstance(doc, dict):
        return []
    places: list[Place] = [("text",)] if isinstance(doc.get("text"), str) else []
    for i, segment in enumerate(doc.get("segments") or ()):
        if isinstance(segment, dict) and isinstance(segment.get("text"), str):
            places.append(("segments", i, "text"))
    return places


def _get(value: Any, place: Place) -> str:
    for step in place:
        value = value[step]
    return str(value)


def _refused(record: RequestRecord, message: str) -> PolicyViolation:
    record.governance = f"refused: {message}"  # the ledger and the audit log name the rule
    return PolicyViolation(message)

