"""Anthropic's Message Batches (``/v1/messages/batches``) for Anthropic clients, passed
through to an ``anthropic`` deployment, with the same ownership, ids and money as OpenAI's
batches (:mod:`.batches`): polyroute's ids (``msgbatch_pr…``), a worst case reserved at the
batch price when the batch is created (each request's prompt estimate and ``max_tokens``),
and the real cost settled from the succeeded results' usage when the batch has ended (on the
first retrieve or list that sees it ended, or by the poller).

One model per batch: every request's ``params.model`` names the same model group (or
``vendor/model``), whose first ``anthropic`` deployment takes the batch; Anthropic itself
allows several models in one batch."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from polyroute.adapters.anthropic_messages.batches import (
    PROTOCOL,
    MessageBatchClient,
    results_usage,
)
from polyroute.engine.observer import RequestObserver
from polyroute.engine.owned import OwnedObjects, first_that_takes, owner_of
from polyroute.engine.router import Router
from polyroute.errors import GatewayError, InvalidRequest
from polyroute.model.upstream import Deployment
from polyroute.policy.prices import Prices
from polyroute.policy.types import Policy, Principal
from polyroute.storage.objects import ObjectStore, Owned

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode
KIND = "message_batch"
_LIST_MAX = 10_000
_MAX_REQUESTS = 100_000


class MessageBatches(OwnedObjects):
    def __init__(self, router: Callable[[], Router], policy: Policy,
                 client: MessageBatchClient, store: ObjectStore, prices: Prices,
                 clock: Callable[[], float] = time.time,
                 observers: Sequence[RequestObserver] = ()) -> None:
        super().__init__(router, policy, store, prices, clock, observers)
        self._client = client

    async def create(self, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        requests = body.get("requests")
        if not isinstance(requests, list) or not 1 <= len(requests) <= _MAX_REQUESTS:
            raise InvalidRequest(f"requests: between 1 and {_MAX_REQUESTS} requests.",
                                 param="requests")
        model, input_tokens, output_tokens = _summary(requests)
        group, deployments = self._route(principal, model, frozenset({PROTOCOL}),
                                         "Anthropic deployments (protocol anthropic)")
        ticket = await self._reserve(principal, group, deployments, input_tokens,
                                     output_tokens)
        oid = f"msgbatch_pr{uuid.uuid4().hex[:24]}"
        detail = {"group": group, "model": model, "endpoint": "messages_batches",
                  "input_tokens": input_tokens, "output_tokens": output_tokens,
                  "key_id": principal.key_id, "team": principal.team, "org": principal.org}

        async def send(deployment: Deployment) -> dict[str, Any]:
            sent = {"requests": [{"custom_id": r["custom_id"],
                                  "params": {**r["params"], "model": deployment.model}}
                                 for r in requests]}
            return _decode(await self._client.call(deployment.endpoint, deployment.name,
                                                   "POST", body=_encode(sent)))

        try:
            deployment, upstream = await first_that_takes(deployments, send)
        except GatewayError as exc:
            self._refund(ticket, self._record(oid, principal, detail, deployments[-1]), exc)
            raise
        record = self._record(oid, principal, detail, deployment)
        self._tickets[oid] = ticket
        shown = _shown(oid, upstream)
        await self._store.add(Owned(oid, KIND, owner_of(principal), str(upstream["id"]),
                                    deployment.name, record.started_at,
                                    _encode(shown).decode(), _encode(detail).decode()))
        return shown

    async def batch(self, principal: Principal, oid: str) -> dict[str, Any]:
        return await self._refresh(await self._owned(principal, oid, KIND))

    async def batches(self, principal: Principal, limit: int,
                      after: str | None) -> dict[str, Any]:
        rows = await self._store.owned_by(owner_of(principal), KIND, _LIST_MAX)
        ids = [row.id for row in rows]
        if after is not None:
            rows = rows[ids.index(after) + 1:] if after in ids else []
        page = [await self._refresh(row) for row in rows[:limit]]
        return {"data": page, "has_more": len(rows) > limit,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None}

    async def cancel(self, principal: Principal, oid: str) -> dict[str, Any]:
        owned = await self._owned(principal, oid, KIND)
        deployment = self._deployment(owned.deployment)
        upstream = _decode(await self._client.call(
            deployment.endpoint, deployment.name, "POST", f"/{owned.upstream_id}/cancel"))
        return await self._adopt(owned, upstream, deployment)

    async def delete(self, principal: Principal, oid: str) -> dict[str, Any]:
        owned = await self._owned(principal, oid, KIND)
        deployment = self._deployment(owned.deployment)
        await self._client.call(deployment.endpoint, deployment.name, "DELETE",
                                f"/{owned.upstream_id}")
        await self._store.delete(oid, owned.owner)
        return {"id": oid, "type": "message_batch_deleted"}

    async def results(self, principal: Principal, oid: str) -> bytes:
        owned = await self._owned(principal, oid, KIND)
        deployment = self._deployment(owned.deployment)
        return await self._client.call(deployment.endpoint, deployment.name, "GET",
                                       f"/{owned.upstream_id}/results")

    async def poll(self) -> int:
        settled = 0
        for owned in await self._store.unsettled(KIND, 1000):
            try:
                shown = await self._refresh(owned)
            except GatewayError:
                continue
            settled += shown.get("processing_status") == "ended"
        return settled

    async def _refresh(self, owned: Owned) -> dict[str, Any]:
        if owned.settled:
            return _decode(owned.object)
        deployment = self._deployment(owned.deployment)
        upstream = _decode(await self._client.call(
            deployment.endpoint, deployment.name, "GET", f"/{owned.upstream_id}"))
        return await self._adopt(owned, upstream, deployment)

    async def _adopt(self, owned: Owned, upstream: dict[str, Any],
                     deployment: Deployment) -> dict[str, Any]:
        shown = _shown(owned.id, upstream)
        if upstream.get("processing_status") != "ended":
            await self._store.update(owned.id, _encode(shown).decode())
            return shown
        usage, succeeded = results_usage(await self._client.call(
            deployment.endpoint, deployment.name, "GET", f"/{owned.upstream_id}/results"))
        await self._charge(owned, shown, deployment, usage,
                           None if succeeded else "batch_no_results")
        return shown


def _shown(oid: str, upstream: dict[str, Any]) -> dict[str, Any]:
    """The upstream's batch under polyroute's id; its results at polyroute's path (the
    surface makes it absolute)."""
    results = f"/v1/messages/batches/{oid}/results" if upstream.get("results_url") else None
    return {**upstream, "id": oid, "results_url": results}


def _summary(requests: list[Any]) -> tuple[str, int, int]:
    """(the one model, prompt estimate, the most output) of a batch's requests."""
    model = None
    input_tokens = output_tokens = 0
    seen: set[str] = set()
    for i, request in enumerate(requests):
        where = f"requests[{i}]"
        if not isinstance(request, dict) or not isinstance(request.get("custom_id"), str) \
                or not isinstance(request.get("params"), dict):
            raise InvalidRequest(f"{where} needs a 'custom_id' string and a 'params' object.",
                                 param=where)
        if request["custom_id"] in seen:
            raise InvalidRequest(f"{where}.custom_id repeats '{request['custom_id']}'.",
                                 param=f"{where}.custom_id")
        seen.add(request["custom_id"])
        params = request["params"]
        if model is None:
            model = params.get("model")
            if not isinstance(model, str) or not model:
                raise InvalidRequest(f"{where}.params.model is required.",
                                     param=f"{where}.params.model")
        elif params.get("model") != model:
            raise InvalidRequest(f"{where}.params.model: polyroute runs one model per batch "
                                 f"('{model}').", param=f"{where}.params.model")
        limit = params.get("max_tokens")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidRequest(f"{where}.params.max_tokens must be a positive integer.",
                                 param=f"{where}.params.max_tokens")
        if params.get("stream"):
            raise InvalidRequest(f"{where}.params.stream: a batch's requests are not "
                                 "streamed.", param=f"{where}.params.stream")
        input_tokens += len(_encode(params)) // 4 + 1
        output_tokens += limit
    assert model is not None  # requests is not empty
    return model, input_tokens, output_tokens
