"""What OpenAI's batches (:mod:`.batches`) and Anthropic's Message Batches
(:mod:`.message_batches`) share: objects a key owns, the deployment that holds each, a batch's
reservation at the batch price, failover at creation, and settlement once it ended."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from polyroute.engine.observer import RequestObserver
from polyroute.engine.router import Router
from polyroute.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
    UpstreamError,
)
from polyroute.model.record import RequestRecord
from polyroute.model.upstream import Deployment
from polyroute.model.usage import Usage
from polyroute.policy.prices import Prices
from polyroute.policy.types import AdmissionRequest, Policy, Principal
from polyroute.pricing.cost import scaled
from polyroute.storage.objects import ObjectStore, Owned

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode


def owner_of(principal: Principal) -> str:
    """Whose objects these are: the key (the master key is one owner; anonymous callers of a
    gateway without keys another)."""
    return principal.key_id or ""

class OwnedObjects:
    """What OpenAI's batches and Anthropic's Message Batches share: the owner's objects, the
    deployment that holds each, reservations and settlement."""

    def __init__(self, router: Callable[[], Router], policy: Policy, store: ObjectStore,
                 prices: Prices, clock: Callable[[], float] = time.time,
                 observers: Sequence[RequestObserver] = ()) -> None:
        self._router = router
        self._observers = observers
        self._policy = policy
        self._store = store
        self._prices = prices
        self._clock = clock
        self._tickets: dict[str, object] = {}
        """Batch id → its reservation, held in this process until the batch is settled."""

    async def _reserve(self, principal: Principal, group: str, deployments: list[Deployment],
                       input_tokens: int, output_tokens: int) -> object:
        """The worst case at the dearest of ``deployments``' batch prices."""
        prices = []
        for deployment in deployments:
            price = self._prices.of(deployment.vendor, deployment.model)
            factor = self._prices.batch_factor(deployment.vendor)
            prices.append(scaled(price, factor) if price is not None else None)
        return await self._policy.reserve(principal, AdmissionRequest(
            model_group=group, estimated_input_tokens=input_tokens,
            max_output_tokens=output_tokens, prices=prices))

    def _refund(self, ticket: object, record: RequestRecord, exc: GatewayError) -> None:
        """The upstream refused the batch: nothing runs, the reservation goes back at $0."""
        record.status, record.error_class = exc.status, exc.error_class
        self._settle(ticket, record, self._prices.batch_factor(record.vendor or ""))

    def _settle(self, ticket: object, record: RequestRecord, factor: float) -> None:
        self._policy.settle_batch(ticket, record, factor)
        for observer in self._observers:  # counted under endpoint 'batches'
            observer.observe(record)

    async def _charge(self, owned: Owned, shown: dict[str, Any], deployment: Deployment,
                      usage: Usage | None, failure: str | None) -> None:
        """Settle a batch that ended, once (the first replica or request to mark it)."""
        if not await self._store.settle(owned.id, text(shown)):
            return  # another replica (or request) settled it first
        detail = _decode(owned.detail)
        principal = Principal(key_id=detail.get("key_id"), team=detail.get("team"),
                              org=detail.get("org"))
        record = self._record(owned.id, principal, detail, deployment)
        record.started_at = owned.created_at
        record.latency_s = max(0.0, self._clock() - owned.created_at)
        record.usage = usage
        if failure is not None:  # cancelled by its owner: 499, as a client that hung up
            record.status = 499 if failure.endswith("cancelled") else 502
            record.error_class = failure
        self._settle(self._tickets.pop(owned.id, None), record,
                     self._prices.batch_factor(deployment.vendor))

    def _record(self, oid: str, principal: Principal, detail: dict[str, Any],
                deployment: Deployment) -> RequestRecord:
        record = RequestRecord(oid, self._clock(), detail.get("endpoint", "batches"),
                               str(detail.get("model")))
        record.model_group = detail.get("group")
        record.vendor, record.deployment = deployment.vendor, deployment.name
        record.upstream_model = deployment.model
        record.key_id, record.team, record.org = principal.key_id, principal.team, principal.org
        return record

    def _route(self, principal: Principal, model: str, protocols: frozenset[str],
               names: str) -> tuple[str, list[Deployment]]:
        """The deployments of ``model``'s group (and its fallbacks), in the group's order,
        that speak one of ``protocols`` (described as ``names`` when none does)."""
        route = self._router().route(model, allowed=principal.allowed_models)
        if not principal.may_use(route.group):
            raise PermissionDenied(f"This key may not use the model '{route.group}'.",
                                   param="model")
        able = [d for d in route.candidates if d.endpoint.protocol in protocols]
        if not able:
            spoken = sorted({d.endpoint.protocol for d in route.candidates})
            raise InvalidRequest(
                f"No deployment of model '{route.group}' can run this batch: its deployments "
                f"speak {', '.join(spoken)}, and these batches go to {names}.", param="model",
                code="unsupported_endpoint")
        return route.group, able

    def _deployment(self, name: str) -> Deployment:
        router = self._router()
        for deployment in router.deployments:
            if deployment.name == name:
                return deployment
        if "/" in name:  # a '<vendor>/<model>' deployment made on the fly
            return router.group(name).deployments[0]
        raise ServiceUnavailable(f"The deployment '{name}' that holds this object is no "
                                 "longer configured.")

    async def _owned(self, principal: Principal, oid: str, kind: str,
                     param: str | None = None) -> Owned:
        owned = await self._store.get(oid, owner_of(principal), kind)
        if owned is None:
            what = "file" if kind == "file" else "batch"
            raise NotFound(f"No {what} with id '{oid}'.", param=param or f"{what}_id")
        return owned

async def first_that_takes(
    deployments: list[Deployment],
    send: Callable[[Deployment], Awaitable[dict[str, Any]]],
) -> tuple[Deployment, dict[str, Any]]:
    """Failover for a batch's creation: the next deployment when one cannot be reached, is
    overloaded or fails (an upstream error that is not the request's fault); the last
    deployment's error otherwise."""
    for i, deployment in enumerate(deployments):
        try:
            return deployment, await send(deployment)
        except UpstreamError as exc:
            if i == len(deployments) - 1 or not (exc.status >= 500 or exc.status == 429):
                raise
    raise AssertionError("unreachable: deployments is never empty")

def text(obj: dict[str, Any]) -> str:
    return _encode(obj).decode()
