"""The request pipeline: route, attempt deployments in order, settle.

A deployment may be swapped for the next one only while nothing has reached the client. For a
stream that point is the first chunk: ``stream_chat`` pulls it inside the attempt loop and only
then hands the stream to the surface, which sends response headers after it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from polyroute.adapters.registry import AdapterRegistry
from polyroute.config import Deployment
from polyroute.engine.observer import RequestObserver
from polyroute.engine.router import Router
from polyroute.errors import (
    AllDeploymentsFailed,
    GatewayError,
    StreamInterrupted,
    UpstreamError,
    UpstreamProtocolError,
)
from polyroute.model.chat import ChatChunk, ChatRequest, ChatResponse
from polyroute.model.embeddings import EmbeddingRequest, EmbeddingResponse
from polyroute.model.record import Attempt, RequestRecord
from polyroute.model.usage import Usage

T = TypeVar("T")

CLIENT_CLOSED = 499  # nginx's convention: the client went away before the answer ended


class Gateway:
    def __init__(
        self,
        router: Router,
        adapters: AdapterRegistry,
        observers: Sequence[RequestObserver],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._router = router
        self._adapters = adapters
        self._observers = tuple(observers)
        self._clock = clock

    async def chat(self, request: ChatRequest, record: RequestRecord) -> ChatResponse:
        async def call(dep: Deployment) -> ChatResponse:
            return await self._adapters.get(dep.endpoint.protocol).chat(request, dep)

        return await self._attempts(request.model, record, call, lambda r: r.usage)

    async def embed(self, request: EmbeddingRequest, record: RequestRecord) -> EmbeddingResponse:
        async def call(dep: Deployment) -> EmbeddingResponse:
            return await self._adapters.get(dep.endpoint.protocol).embed(request, dep)

        def usage(response: EmbeddingResponse) -> Usage | None:
            u = response.usage
            return Usage(prompt_tokens=u.prompt_tokens, total_tokens=u.total_tokens) if u else None

        return await self._attempts(request.model, record, call, usage)

    async def _attempts(
        self,
        model: str,
        record: RequestRecord,
        call: Callable[[Deployment], Awaitable[T]],
        usage: Callable[[T], Usage | None],
    ) -> T:
        start = self._clock()
        try:
            route = self._router.route(model)
            record.model_group = route.group
            errors: list[UpstreamError] = []
            for dep in route.candidates:
                t0 = self._clock()
                try:
                    result = await call(dep)
                except UpstreamError as exc:
                    errors.append(self._failed(record, dep, exc, t0))
                    if not exc.failover:
                        break
                    continue
                self._succeeded(record, dep, t0)
                record.usage = usage(result)
                return result
            raise _combined(route.group, errors)
        except GatewayError as exc:
            record.status, record.error_class = exc.status, exc.error_class
            raise
        finally:
            record.latency_s = self._clock() - start
            self._finish(record)

    async def stream_chat(self, request: ChatRequest, record: RequestRecord) -> LiveStream:
        """Return a stream whose first chunk has already arrived (see the module docstring).

        Errors before that point raise here and the client gets a plain HTTP error. Errors after
        it surface from the iterator as :class:`StreamInterrupted`.
        """
        start = self._clock()
        try:
            route = self._router.route(request.model)
            record.model_group = route.group
            errors: list[UpstreamError] = []
            for dep in route.candidates:
                t0 = self._clock()
                stream = self._adapters.get(dep.endpoint.protocol).stream_chat(request, dep)
                try:
                    first = await anext(stream)
                except StopAsyncIteration:
                    exc: UpstreamError = UpstreamProtocolError(
                        "the upstream sent an empty stream", deployment=dep.name)
                except UpstreamError as error:
                    exc = error
                except BaseException:
                    await stream.aclose()  # type: ignore[attr-defined]
                    raise
                else:
                    self._succeeded(record, dep, t0)
                    record.ttft_s = self._clock() - start
                    return LiveStream(first, stream, record, lambda: self._settle(record, start))
                await stream.aclose()  # type: ignore[attr-defined]
                errors.append(self._failed(record, dep, exc, t0))
                if not exc.failover:
                    break
            raise _combined(route.group, errors)
        except BaseException as exc:
            if isinstance(exc, GatewayError):
                record.status, record.error_class = exc.status, exc.error_class
            else:
                record.status, record.error_class = CLIENT_CLOSED, "client_closed"
            record.latency_s = self._clock() - start
            self._finish(record)
            raise

    def _succeeded(self, record: RequestRecord, dep: Deployment, t0: float) -> None:
        record.attempts.append(Attempt(dep.name, dep.vendor, self._clock() - t0))
        record.vendor, record.deployment, record.upstream_model = dep.vendor, dep.name, dep.model

    def _failed(
        self, record: RequestRecord, dep: Deployment, exc: UpstreamError, t0: float
    ) -> UpstreamError:
        exc.deployment = exc.deployment or dep.name
        record.attempts.append(
            Attempt(dep.name, dep.vendor, self._clock() - t0, exc.error_class, exc.status))
        return exc

    def _settle(self, record: RequestRecord, start: float) -> None:
        record.latency_s = self._clock() - start
        self._finish(record)

    def _finish(self, record: RequestRecord) -> None:
        for observer in self._observers:
            observer.observe(record)


class LiveStream:
    """A stream that is already answering, as batches of chunks. Whoever consumes it must
    ``aclose()`` it; that closes the upstream connection (so a client that left stops the
    upstream too) and settles the request exactly once."""

    def __init__(
        self,
        first: list[ChatChunk],
        upstream: AsyncIterator[list[ChatChunk]],
        record: RequestRecord,
        settle: Callable[[], None],
    ) -> None:
        self._next: list[ChatChunk] | None = first
        self._upstream = upstream
        self._record = record
        self._settle = settle
        self._complete = False
        self._closed = False

    def __aiter__(self) -> LiveStream:
        return self

    async def __anext__(self) -> list[ChatChunk]:
        batch = self._next
        if batch is not None:
            self._next = None
        else:
            if self._closed:
                raise StopAsyncIteration
            try:
                batch = await anext(self._upstream)
            except StopAsyncIteration:
                self._complete = True
                await self.aclose()
                raise
            except UpstreamError as exc:
                self._record.status, self._record.error_class = 502, "stream_interrupted"
                await self.aclose()
                raise StreamInterrupted(
                    f"the upstream failed after the answer had started: {exc.message}"
                ) from exc
        for chunk in batch:
            if chunk.usage is not None:
                self._record.usage = chunk.usage
        return batch

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        record = self._record
        if not self._complete and record.error_class is None:
            record.status, record.error_class = CLIENT_CLOSED, "client_closed"
        try:
            await self._upstream.aclose()  # type: ignore[attr-defined]
        finally:
            self._settle()


def _combined(group: str, errors: list[UpstreamError]) -> GatewayError:
    if len(errors) == 1:
        return errors[0]  # one attempt: the vendor's own error, unwrapped
    return AllDeploymentsFailed(group, errors)
