"""The request pipeline: route, run the attempt loop, settle.

A deployment may be swapped for another only while nothing has reached the client. For a
stream that point is its first content (see :mod:`.streaming`); the surface sends response
headers only after ``stream_chat`` has returned.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from random import Random
from typing import TypeVar, cast

import msgspec

from polyroute.adapters.media_stream import MediaStream
from polyroute.adapters.passthrough import refuse_untranslatable
from polyroute.adapters.registry import AdapterRegistry
from polyroute.autorouter.text import prompt_text, visible_text
from polyroute.cache.control import CacheControl
from polyroute.config import Deployment
from polyroute.config.compiled import Timeouts
from polyroute.engine.attempts import AttemptLoop
from polyroute.engine.cascade import Cascade, total_usage, worst_case_calls
from polyroute.engine.circuit import Breakers
from polyroute.engine.deadlines import Pace, asks_for_reasoning, prompt_units
from polyroute.engine.estimate import (
    Reservation,
    answer_units,
    estimate_input_tokens,
    prediction_tokens,
)
from polyroute.engine.governance import govern, restore_response, stream_restorer
from polyroute.engine.guardrails import Checks, Guardrails
from polyroute.engine.media import MediaRelay, media_reservation, serving
from polyroute.engine.media_governance import (
    EMBEDDINGS,
    checked_answer,
    embedding_of,
    embedding_view,
    prompt_of,
    put_back,
    refuse_unread,
)
from polyroute.engine.observer import RequestObserver, Tracer
from polyroute.engine.quota_gate import QuotaCheck, QuotaGate
from polyroute.engine.recovery import Recovery
from polyroute.engine.response_cache import BYPASS, NOT_CACHED, Lookup, ResponseCache
from polyroute.engine.resume import Resumed
from polyroute.engine.room import Holder
from polyroute.engine.router import Route, Router
from polyroute.engine.streaming import CLIENT_CLOSED, LiveStream, OpenedStream, open_stream
from polyroute.engine.tags import metadata_tags
from polyroute.errors import GatewayError, InvalidRequest, UpstreamError, UpstreamTimeout
from polyroute.model.chat import ChatRequest, ChatResponse
from polyroute.model.embeddings import EmbeddingRequest, EmbeddingResponse
from polyroute.model.media import MediaRequest, MediaResponse
from polyroute.model.record import Attempt, RequestRecord
from polyroute.model.usage import Usage
from polyroute.policy.types import ANONYMOUS, AdmissionRequest, OpenPolicy, Policy, Principal

T = TypeVar("T")

_TTFT_SAMPLES = 256
_VERIFIER_PROMPT_TOKENS = 64
"""The verifier question's own words, around the prompt and the answer."""
_HEDGE_MIN_SAMPLES = 20
_HEDGE_DEFAULT_DELAY_S = 1.0


@dataclass(frozen=True, slots=True)
class TimeoutOverrides:
    """Per-request deadlines a client may ask for (tighter or looser than the group's)."""

    total_s: float | None = None
    ttft_s: float | None = None
    stall_s: float | None = None
    tags: frozenset[str] = frozenset()
    """Not a deadline but another per-request header: the deployment tags asked for
    (``x-polyroute-tags``)."""

    def apply(self, timeouts: Timeouts) -> Timeouts:
        """A deadline the client chose is not adapted: its floor is set to it too."""
        changes: dict[str, float] = {
            k: v for k, v in (("total_s", self.total_s), ("ttft_s", self.ttft_s),
                              ("ttft_floor_s", self.ttft_s), ("stall_s", self.stall_s),
                              ("stall_floor_s", self.stall_s)) if v is not None}
        return replace(timeouts, **changes) if changes else timeouts  # type: ignore[arg-type]


NO_OVERRIDES = TimeoutOverrides()


class Gateway:
    def __init__(
        self,
        router: Router,
        adapters: AdapterRegistry,
        observers: Sequence[RequestObserver],
        breakers: Breakers,
        policy: Policy | None = None,
        clock: Callable[[], float] = time.perf_counter,
        rng: Random | None = None,
        quota: QuotaGate | None = None,
        cache: ResponseCache | None = None,
        tracer: Tracer | None = None,
        guardrails: Guardrails | None = None,
    ) -> None:
        self._guardrails = guardrails
        """Guardrail hooks (issue 11): those of every request, and those policies name."""
        self._policy: Policy = policy or OpenPolicy()
        self._quota = quota
        """Deployments' own rpm/tpm (the vendor's quota); None: not enforced."""
        self.cache = cache
        self._tracer = tracer
        """None: tracing is off, and costs one test per request and attempt."""
        self._router = router
        self._adapters = adapters
        self._observers = tuple(observers)
        self._breakers = breakers
        self._clock = clock
        self._rng = rng or Random()
        self._ttft: dict[str, deque[float]] = {}
        self._pace = Pace()

    @property
    def router(self) -> Router:
        return self._router

    def use(self, router: Router) -> None:
        """Route new requests with ``router`` (a reloaded config); requests in flight finish
        on the route they were given."""
        self._router = router

    def use_guardrails(self, guardrails: Guardrails) -> None:
        """Check new requests with ``guardrails`` (a reloaded config); a request in flight
        keeps the hooks it selected when it started."""
        self._guardrails = guardrails

    async def chat(
        self, request: ChatRequest, record: RequestRecord,
        overrides: TimeoutOverrides = NO_OVERRIDES, principal: Principal = ANONYMOUS,
    ) -> ChatResponse:
        async def attempt(dep: Deployment, timeouts: Timeouts, deadline: float) -> ChatResponse:
            refuse_untranslatable(request, dep)
            adapter = self._adapters.get(dep.endpoint.protocol)
            return await _bounded(adapter.chat(request, dep, connect_s=timeouts.connect_s),
                                  timeouts.response_s, deadline)

        def usage(response: ChatResponse) -> Usage | None:
            if response.usage is None:  # counted here, charged as an estimate
                record.output_units = answer_units(response)
            return response.usage

        return await self._complete(request.model, request.models or (), record, overrides,
                                    attempt, usage, principal, reservation(request), request)

    async def cached(
        self, request: ChatRequest, record: RequestRecord, principal: Principal,
        control: CacheControl,
    ) -> Lookup:
        """Look ``request`` up in the response cache. A hit is admitted (the key may use the
        group, within its rate limits: it costs nothing) and settled here, at $0 with the
        amount saved; the caller then only encodes it. Otherwise the caller runs ``chat`` or
        ``stream_chat`` and hands the answer to ``cache.keep``."""
        if self.cache is None:
            return NOT_CACHED
        try:
            group = self._router.group(request.model, principal.allowed_models).name
        except GatewayError:
            return NOT_CACHED  # chat() and stream_chat() raise it again, and record it
        if self.cache.mode(group) == "off":
            return NOT_CACHED
        if principal.governance or (self._guardrails is not None
                                    and self._guardrails.everyone):
            # A hit would skip the caller's data-governance policies and the guardrails, which
            # read the prompt and the answer: such requests neither use nor fill the cache.
            record.cache = BYPASS.outcome
            return BYPASS
        lookup = await self.cache.lookup(request, group, principal, control)
        record.cache = lookup.outcome
        if lookup.hit is None:
            return lookup
        start = self._clock()
        hit = lookup.hit
        record.model_group, record.cache_age_s = group, lookup.age_s
        record.cache_similarity = lookup.similarity
        record.vendor, record.upstream_model = hit.vendor, hit.upstream_model
        record.saved_usage = hit.response.usage
        record.key_id, record.team, record.org = principal.key_id, principal.team, principal.org
        ticket: object = None
        try:
            ticket = await self._policy.admit(principal, AdmissionRequest(group, 0, 0, ()))
        except GatewayError as exc:  # refused: served nothing, so no hit and nothing saved
            record.status, record.error_class = exc.status, exc.error_class
            record.cache = record.saved_usage = None
            raise
        finally:
            if request.stream and record.error_class is None:
                record.ttft_s = self._clock() - start
            self._settle(record, start, ticket)
        return lookup

    async def embed(
        self, request: EmbeddingRequest, record: RequestRecord,
        overrides: TimeoutOverrides = NO_OVERRIDES, principal: Principal = ANONYMOUS,
    ) -> EmbeddingResponse:
        # What the input meets: the caller's policies and the prompt guardrails, as a chat
        # prompt does; a caller with neither pays one test.
        view = embedding_view(request) if principal.governance or (
            self._guardrails is not None and self._guardrails.everyone) else None
        sent = view.fields if view is not None else None

        async def attempt(
            dep: Deployment, timeouts: Timeouts, deadline: float
        ) -> EmbeddingResponse:
            adapter = self._adapters.get(dep.endpoint.protocol)
            ask = request if view is None else embedding_of(request, view, sent)
            return await _bounded(adapter.embed(ask, dep, connect_s=timeouts.connect_s),
                                  timeouts.response_s, deadline)

        def usage(response: EmbeddingResponse) -> Usage | None:
            u = response.usage
            return Usage(prompt_tokens=u.prompt_tokens, total_tokens=u.total_tokens) if u else None

        text = request.input if isinstance(request.input, str) else " ".join(
            str(i) for i in request.input)
        return await self._complete(request.model, (), record, overrides, attempt, usage,
                                    principal, Reservation(len(text) // 4 + 1, 0), media=view)

    async def media(
        self, request: MediaRequest, record: RequestRecord,
        overrides: TimeoutOverrides = NO_OVERRIDES, principal: Principal = ANONYMOUS,
    ) -> MediaResponse:
        """An image, audio, rerank or moderation request answered whole (``model/media.py``):
        routed only to deployments whose protocol serves the endpoint, failed over like chat."""
        async def attempt(dep: Deployment, timeouts: Timeouts, deadline: float) -> MediaResponse:
            adapter = self._adapters.media(dep.endpoint.protocol)
            return await _bounded(adapter.media(request, dep, connect_s=timeouts.connect_s),
                                  timeouts.response_s, deadline)

        def usage(response: MediaResponse) -> Usage | None:
            # The answer's own measure; else the request's (a spoken text's characters, an
            # upload's seconds when the transcript came as plain text).
            record.units = response.units or request.fallback or request.estimate
            record.units_estimated = response.units is None \
                and request.fallback is not None and request.fallback_estimated
            return response.usage

        return await self._complete(request.model, (), record, overrides, attempt, usage,
                                    principal, media_reservation(request), media=request)

    async def open_media(
        self, request: MediaRequest, record: RequestRecord,
        overrides: TimeoutOverrides = NO_OVERRIDES, principal: Principal = ANONYMOUS,
    ) -> MediaRelay:
        """An answer relayed as it arrives (speech, a streamed transcript): failed over until
        its first byte; the caller iterates the relay, which settles the request when it ends
        or is closed."""
        start = self._clock()
        ticket: object = None
        holder = None
        if self._tracer is not None:
            self._tracer.begin(record)
        try:
            route = self._route(request.model, (), record, principal=principal,
                                tags=overrides.tags, media=request)
            await self._check_media(request, route, principal, record)
            reserve = media_reservation(request)
            ticket = await self._admit(principal, route, record, reserve)
            holder, quota = self._room(route, reserve, stream=True)
            own = route.resilience.timeouts
            timeouts = overrides.apply(own)
            deadline = asyncio.get_running_loop().time() + timeouts.total_s

            async def attempt(dep: Deployment) -> tuple[MediaStream, bytes]:
                adapter = self._adapters.media(dep.endpoint.protocol)
                stream = await _bounded(adapter.open_media(request, dep,
                                                           connect_s=timeouts.connect_s),
                                        timeouts.ttft_s, deadline)
                try:
                    first = await _bounded(anext(stream.pieces, b""), timeouts.ttft_s,
                                           deadline)
                except BaseException:
                    await stream.aclose()
                    raise
                return stream, first

            async def discard(opened: tuple[MediaStream, bytes]) -> None:
                await opened[0].aclose()

            loop: AttemptLoop[tuple[MediaStream, bytes]] = self._loop(
                route, record, deadline, discard=discard, holder=holder, quota=quota)
            (stream, first), _ = await loop.run(_blaming_the_client(
                attempt, timeouts.total_s < own.total_s or timeouts.ttft_s < own.ttft_s,
                own.ttft_s))
        except BaseException as exc:
            self._unopened(exc, record, start, ticket, holder)
            raise
        record.ttft_s = self._clock() - start
        # Speech is billed by its text, whatever it yields; a streamed transcript by the usage
        # of its last event, else by the upload (MediaRelay measures it at the end).
        record.units = request.fallback or request.estimate
        return MediaRelay(stream, first, timeouts.stall_s, deadline,
                          lambda: self._settle(record, start, ticket, holder), record)

    async def _complete(
        self,
        model: str,
        also: Sequence[str],
        record: RequestRecord,
        overrides: TimeoutOverrides,
        attempt: Callable[[Deployment, Timeouts, float], Awaitable[T]],
        usage: Callable[[T], Usage | None],
        principal: Principal,
        reserve: Reservation,
        request: ChatRequest | None = None,
        media: MediaRequest | None = None,
    ) -> T:
        start = self._clock()
        ticket: object = None
        holder = None
        if self._tracer is not None:
            self._tracer.begin(record)
        try:
            route = self._route(model, also, record, request, principal, overrides.tags,
                                media=media)
            checks = self._checks(principal) if request is not None else None
            if media is not None:
                checks = await self._check_media(media, route, principal, record)
            if checks is not None and request is not None:
                await checks.request(request, route.group, record)
                checks.readable(request, record)
            ticket = await self._admit(principal, route, record, reserve, request)
            holder, quota = self._room(route, reserve, stream=False)
            own = route.resilience.timeouts
            timeouts = overrides.apply(own)
            deadline = asyncio.get_running_loop().time() + timeouts.total_s
            loop: AttemptLoop[T] = self._loop(route, record, deadline, also, holder=holder,
                                              quota=quota)
            if route.cascade is not None and request is not None:
                result = cast(T, await self._cascade(route, record, request, timeouts,
                                                     deadline, holder, quota,
                                                     bool(principal.governance)))
            else:
                result, dep = await loop.run(_blaming_the_client(
                    lambda dep: attempt(dep, timeouts, deadline),
                    timeouts.total_s < own.total_s, own.response_s))
                self._served(route, principal, dep)
                record.usage = usage(result)
            if checks is not None and isinstance(result, ChatResponse) \
                    and request is not None:
                # after the upstream answered: a refusal is billed at its cost (status 403)
                await checks.response(result, request, route.group, record)
            if route.redactor is not None and isinstance(result, ChatResponse):
                restore_response(result, route.redactor)
            if checks is not None and media is not None and isinstance(result, MediaResponse):
                # a transcript: a refusal is billed at its cost, as a chat answer's is
                result = cast(T, await checked_answer(result, media, checks, route.group,
                                                      record))
            return result
        except GatewayError as exc:
            record.status, record.error_class = exc.status, exc.error_class
            raise
        except asyncio.CancelledError:
            record.status, record.error_class = CLIENT_CLOSED, "client_closed"
            raise
        finally:
            self._settle(record, start, ticket, holder)

    async def stream_chat(
        self, request: ChatRequest, record: RequestRecord,
        overrides: TimeoutOverrides = NO_OVERRIDES, principal: Principal = ANONYMOUS,
    ) -> LiveStream:
        """A stream whose first content has already arrived. Errors before that point raise
        here, and the client gets a plain HTTP error; later ones surface from the stream as
        :class:`~polyroute.errors.StreamInterrupted`."""
        start = self._clock()
        ticket: object = None
        holder = None
        if self._tracer is not None:
            self._tracer.begin(record)
        try:
            route = self._route(request.model, request.models or (), record, request, principal,
                                overrides.tags)
            if route.cascade is not None:  # the surfaces send these to chat(): see cascades()
                raise InvalidRequest(f"Model '{route.group}' is a cascade: it answers a stream "
                                     "whole, through chat().", param="stream")
            checks = self._checks(principal)
            if checks is not None:
                await checks.request(request, route.group, record)
            reserve = reservation(request)
            input_tokens = reserve.input_tokens
            ticket = await self._admit(principal, route, record, reserve, request)
            holder, quota = self._room(route, reserve, stream=True)
            own = route.resilience.timeouts
            timeouts = overrides.apply(own)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeouts.total_s
            units = prompt_units(input_tokens)
            # How long a model thinks is the request's choice, not the deployment's pace: such
            # requests keep the configured first-token deadline and teach it nothing.
            learn = not asks_for_reasoning(request)

            async def attempt(dep: Deployment) -> OpenedStream:
                refuse_untranslatable(request, dep)
                adapter = self._adapters.get(dep.endpoint.protocol)
                t0 = loop.time()
                upstream = adapter.stream_chat(request, dep, connect_s=timeouts.connect_s)
                ttft_s = self._pace.ttft_s(dep.upstream, timeouts, units) if learn \
                    else timeouts.ttft_s
                opened = await open_stream(upstream, ttft_s, deadline)
                if learn:
                    self._pace.first_token(dep.upstream, loop.time() - t0, units)
                return opened

            attempts: AttemptLoop[OpenedStream] = self._loop(
                route, record, deadline, request.models or (), discard=OpenedStream.aclose,
                holder=holder, quota=quota)
            opened, dep = await attempts.run(_blaming_the_client(
                attempt, timeouts.total_s < own.total_s or timeouts.ttft_s < own.ttft_s,
                own.ttft_s))
            self._served(route, principal, dep)
        except BaseException as exc:
            self._unopened(exc, record, start, ticket, holder)
            raise
        record.ttft_s = self._clock() - start
        samples = self._ttft.get(route.group)
        if samples is None:  # not setdefault: that would build a deque per stream
            samples = self._ttft[route.group] = deque(maxlen=_TTFT_SAMPLES)
        samples.append(record.ttft_s)

        def failed(broken: Deployment, exc: UpstreamError) -> None:
            if isinstance(exc, UpstreamTimeout) and (
                    timeouts.stall_s < own.stall_s or timeouts.total_s < own.total_s):
                return  # the client's own stall or total deadline: not the deployment's fault
            self._breakers.failure(broken.upstream, exc, route.resilience.circuit)

        def resume_loop(candidates: list[Deployment]) -> AttemptLoop[Resumed]:
            return AttemptLoop(
                group=route.group, candidates=candidates, resilience=route.resilience,
                record=record, breakers=self._breakers, deadline=deadline, clock=self._clock,
                rng=self._rng, discard=Resumed.aclose, tracer=self._tracer, resuming=True)

        recovery = Recovery(
            request, route.candidates, record=record, adapters=self._adapters,
            timeouts=timeouts, deadline=deadline, failover_on=route.resilience.failover_on,
            loop=resume_loop, on_failure=failed, prompt_tokens=input_tokens,
            max_resumes=route.resilience.retry.max_attempts, pace=self._pace)
        live = LiveStream(opened, record, stall_s=timeouts.stall_s, deadline=deadline,
                          on_failure=lambda exc: failed(dep, exc),
                          settle=lambda: self._settle(record, start, ticket, holder),
                          recovery=recovery, deployment=dep,
                          pace=(self._pace, timeouts))
        if route.redactor is not None:
            live.rewrite = stream_restorer(route.redactor)
        live.guard = checks.stream(request, route.group, record) if checks else None
        if live.guard is not None:
            try:  # an answer refused before anything was released: a plain HTTP error
                await live.prime()
            except GatewayError:
                raise  # the stream closed and settled itself
            except BaseException:
                await live.aclose()
                raise
        return live

    def _checks(self, principal: Principal) -> Checks | None:
        if self._guardrails is None:
            return None
        return self._guardrails.select(principal.governance)

    async def _check_media(self, media: MediaRequest, route: Route, principal: Principal,
                           record: RequestRecord) -> Checks | None:
        """The prompt guardrails over a media request's texts (its policies' own rules ran in
        ``_route``), and the rule for what it carries unread; the checks of its answer."""
        checks = self._checks(principal)
        refuse_unread(media, principal.governance, checks, record)
        if checks is not None and media.texts:
            await checks.request(prompt_of(media), route.group, record)
        return checks

    def cascades(self, model: str) -> bool:
        """Whether ``model`` is a cascade group (its streams are answered whole, at the end)."""
        group = self._router.known(model)
        return group is not None and group.cascade is not None

    async def _cascade(self, route: Route, record: RequestRecord, request: ChatRequest,
                       timeouts: Timeouts, deadline: float, holder: Holder | None,
                       quota: QuotaCheck | None, governed: bool) -> ChatResponse:
        """Run a cascade group's steps; every call they made is charged (``record.charges``)
        and the route header tells each step's verdict."""
        assert route.cascade is not None
        start = self._clock()

        async def call(candidates: Sequence[Deployment],
                       ask: ChatRequest) -> tuple[ChatResponse, Deployment]:
            async def attempt(dep: Deployment) -> ChatResponse:
                refuse_untranslatable(ask, dep)
                adapter = self._adapters.get(dep.endpoint.protocol)
                return await _bounded(adapter.chat(ask, dep, connect_s=timeouts.connect_s),
                                      timeouts.response_s, deadline)

            loop: AttemptLoop[ChatResponse] = self._loop(
                replace(route, candidates=list(candidates), origins={}), record, deadline,
                holder=holder, quota=quota)
            return await loop.run(attempt)

        def verifiers(group: str) -> list[Deployment]:
            # A governed caller's policy vetted the steps, not the verifier's deployments:
            # its prompt is not sent there, and the judge escalates instead.
            return [] if governed else self._router.route(group).candidates

        cascade = Cascade(route.cascade, route.candidates, call, verifiers)
        try:
            result = await cascade.run(request)
        finally:
            if cascade.charges:  # also when a later step failed: what was paid is billed
                record.charges = cascade.charges
                record.usage = total_usage(cascade.charges)
        record.vendor, record.deployment = result.deployment.vendor, result.deployment.name
        record.upstream_model = result.deployment.model
        record.route = "cascade " + " ".join(result.trail)
        record.route_kind = "cascade/escalated" if result.escalations else "cascade/first"
        if record.stream:  # its first (and only) content goes out now
            record.ttft_s = self._clock() - start
        return result.response

    async def _admit(
        self, principal: Principal, route: Route, record: RequestRecord, reserve: Reservation,
        request: ChatRequest | None = None,
    ) -> object:
        record.key_id, record.team, record.org = principal.key_id, principal.team, principal.org
        record.estimated_input_tokens = reserve.input_tokens
        prices = [d.price for d in route.candidates]
        input_tokens, choices, extra = (reserve.input_tokens, reserve.choices,
                                        reserve.extra_output_tokens)
        if route.cascade is not None:
            # The worst case pays every call of every step, each at the dearest price; a
            # verifier reads the answer as its input: reserved as output, the dearer rate.
            calls = worst_case_calls(route.cascade, len(route.candidates))
            verifier_calls = sum(j.kind == "verifier" for j in route.cascade.judges) * (
                len(route.candidates) - 1)
            for judge in route.cascade.judges:
                if judge.verifier is not None:
                    prices += [d.price for d in self._router.route(judge.verifier).candidates]
            input_tokens = reserve.input_tokens * calls + _VERIFIER_PROMPT_TOKENS * verifier_calls
            choices = reserve.choices * calls
            extra += verifier_calls * (reserve.max_output_tokens or 0)
        admission = AdmissionRequest(
            route.group, input_tokens, reserve.max_output_tokens, prices, choices, extra,
            route.groups, reserve.units)
        ticket = await self._policy.admit(principal, admission)
        limit = reserve.max_output_tokens
        if request is not None and limit is None:
            limit = self._policy.output_cap(principal)
            if limit is not None:
                _limit_output(request, limit)
        if limit is not None:
            record.output_limit = limit * reserve.choices + reserve.extra_output_tokens
        return ticket

    def _route(
        self, model: str, also: Sequence[str], record: RequestRecord,
        request: ChatRequest | None = None, principal: Principal = ANONYMOUS,
        tags: frozenset[str] = frozenset(), media: MediaRequest | None = None,
    ) -> Route:
        route = self._router.route(model, also, request, principal.allowed_models,
                                   tags or metadata_tags(request), principal.team,
                                   principal.org)
        if media is not None and media.endpoint != EMBEDDINGS:  # chat protocols serve it
            route = serving(route, media, record)
        if request is not None:
            route = _speakers_first(route, request)
        if principal.governance:  # issue 11; a caller without policies pays this test only
            record.key_id, record.team, record.org = principal.key_id, principal.team, \
                principal.org  # a refusal's record names the caller
            if media is None:
                route = govern(route, request, principal.governance, record)
            else:  # its texts meet the prompt-side policy as a chat prompt's would
                prompt = prompt_of(media)
                route = govern(route, prompt, principal.governance, record)
                put_back(media, prompt)
            if request is not None and any(p.retain_bodies for _, p in principal.governance):
                # Consent to store bodies: keep what the router reads, for training on
                # feedback (after the policy's redaction: a redacted value stays out).
                record.prompt = visible_text(prompt_text(request.messages))
        record.model_group = route.group
        if route.decision is not None:
            record.route = route.decision.header_value()
        elif route.reason is not None:
            record.route, record.route_kind = route.reason, route.kind
        if route.capped is not None:
            record.route_kind, reason = route.capped
            record.route = f"{record.route}; {reason}" if record.route else reason
        for group in route.refused:  # shown in x-polyroute-attempts; never tried
            record.attempts.append(Attempt(group, "", 0.0, "not_allowed", 403))
        return route

    def _served(self, route: Route, principal: Principal, dep: Deployment) -> None:
        """The vendor that answered counts toward the vendor-share caps (not the first
        choice: failover and hedging decide who really serves)."""
        caps = self._router.caps
        if caps.active:
            caps.served(route.group, principal.team, principal.org, dep.vendor)

    def _loop(
        self, route: Route, record: RequestRecord, deadline: float, also: Sequence[str] = (),
        discard: Callable[[T], Awaitable[None]] | None = None, holder: Holder | None = None,
        quota: QuotaCheck | None = None,
    ) -> AttemptLoop[T]:
        hedge = route.resilience.hedge
        delay = None
        if hedge.enabled:
            def delay() -> float:
                return self._hedge_delay(route.group, hedge.delay_s, hedge.min_delay_s)
        return AttemptLoop(
            group=route.group, candidates=route.candidates, resilience=route.resilience,
            record=record, breakers=self._breakers, deadline=deadline, clock=self._clock,
            rng=self._rng, discard=discard, hedge_delay=delay, origins=route.origins,
            client_listed=frozenset(name for name, group in route.origins.items()
                                    if group in also) if also else frozenset(),
            holder=holder, quota=quota, tracer=self._tracer)

    def _room(self, route: Route, reserve: Reservation,
              stream: bool) -> tuple[Holder | None, QuotaCheck | None]:
        """The request's hold on the room (in flight, latency learnt) when a strategy reads
        it, and its check against the deployments' own quotas when any candidate has one."""
        router = self._router
        quota_bound = self._quota is not None and any(d.rpm or d.tpm for d in route.candidates)
        if not router.learns and not quota_bound:
            return None, None
        tokens = reserve.input_tokens + (reserve.max_output_tokens or 0) * reserve.choices
        group = router.known(route.group)
        knobs = group.knobs if group is not None else None
        holder = None
        if router.learns:
            holder = router.room.holder(stream, knobs.alpha if knobs else None, tokens)
        quota = None
        if self._quota is not None and quota_bound:
            quota = QuotaCheck(self._quota, tokens, knobs.queue_s if knobs else 0.0)
        return holder, quota

    def _hedge_delay(self, group: str, fixed: float | None, floor: float) -> float:
        if fixed is not None:
            return fixed
        samples = self._ttft.get(group)
        if samples is None or len(samples) < _HEDGE_MIN_SAMPLES:
            return max(floor, _HEDGE_DEFAULT_DELAY_S)
        ordered = sorted(samples)
        return max(floor, ordered[int(0.95 * (len(ordered) - 1))])

    def _unopened(self, exc: BaseException, record: RequestRecord, start: float,
                  ticket: object, holder: Holder | None) -> None:
        """A stream (chat or speech) that failed before its first byte: recorded and
        settled here, as the client gets a plain HTTP error."""
        if isinstance(exc, GatewayError):
            record.status, record.error_class = exc.status, exc.error_class
        else:
            record.status, record.error_class = CLIENT_CLOSED, "client_closed"
        self._settle(record, start, ticket, holder)

    def _settle(self, record: RequestRecord, start: float, ticket: object = None,
                holder: Holder | None = None) -> None:
        if holder is not None:
            holder.release()
        record.latency_s = self._clock() - start
        self._policy.settle(ticket, record)
        for observer in self._observers:
            observer.observe(record)


def _speakers_first(route: Route, request: ChatRequest) -> Route:
    """A request with parts only its own protocol can carry (``NativeRequest.untranslatable``)
    goes to the candidates that speak it, when there are any; when there are none, the first
    attempt refuses it, naming the part (:func:`refuse_untranslatable`)."""
    native = request.native
    if native is None or native.untranslatable is None:
        return route
    speakers = [d for d in route.candidates if d.endpoint.protocol == native.protocol]
    if not speakers or len(speakers) == len(route.candidates):
        return route
    return replace(route, candidates=speakers)


def _blaming_the_client(
    attempt: Callable[[Deployment], Awaitable[T]], tightened: bool, own_attempt_s: float,
) -> Callable[[Deployment], Awaitable[T]]:
    """Mark a timeout as the client's when the client ``tightened`` a deadline that bounds the
    attempt (``x-polyroute-timeout``, ``x-polyroute-ttft-timeout``) and it fired before the
    attempt had the group's own limit ``own_attempt_s``: such a timeout is no evidence against
    the deployment, or any tenant could open every circuit with a 1 ms deadline."""
    if not tightened:
        return attempt  # the common case: every timeout is the group's own

    async def attributed(dep: Deployment) -> T:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            return await attempt(dep)
        except UpstreamTimeout as exc:
            if loop.time() - started < own_attempt_s:
                exc.client_caused = True
            raise

    return attributed


def reservation(request: ChatRequest) -> Reservation:
    """What a chat request may cost at most: its prompt, and ``n`` answers of at most
    ``max_completion_tokens`` or ``max_tokens`` each (the larger, when a client sends both:
    servers differ in which one they obey; None: the policy's default)."""
    limits = [x for x in (request.max_completion_tokens, request.max_tokens) if x is not None]
    return Reservation(estimate_input_tokens(request), max(limits) if limits else None,
                       request.n or 1, prediction_tokens(request))


def _limit_output(request: ChatRequest, cap: int) -> None:
    """Send ``cap`` as the upstream's output limit (the reservation assumed it)."""
    request.max_completion_tokens = cap
    if request.passthrough is not None:  # relayed verbatim to an OpenAI upstream
        request.passthrough["max_completion_tokens"] = msgspec.Raw(b"%d" % cap)


async def _bounded(call: Awaitable[T], limit_s: float, deadline: float) -> T:
    """Run one non-streaming attempt within its own limit and the request's deadline."""
    loop = asyncio.get_running_loop()
    limit = min(loop.time() + limit_s, deadline)
    try:
        async with asyncio.timeout_at(limit):
            return await call
    except TimeoutError:
        raise UpstreamTimeout(f"no answer within {limit_s:g} s" if limit < deadline
                              else "the request's deadline passed") from None
