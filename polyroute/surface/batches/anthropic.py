"""``/v1/messages/batches`` in Anthropic's shape: read the request, ask
:class:`~polyroute.engine.message_batches.MessageBatches`, answer JSON (the results as JSONL).
Errors are Anthropic's."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from polyroute.engine.message_batches import MessageBatches
from polyroute.errors import InvalidRequest
from polyroute.surface.exchange import ChatExchange

_encode = msgspec.json.Encoder().encode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode
_MAX_LIMIT = 1000


class MessageBatchHandlers:
    def __init__(self, exchange: ChatExchange, batches: MessageBatches) -> None:
        self._x = exchange
        self._batches = batches

    async def create(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        try:
            body = _decode_object(await self._x.body(http))
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise InvalidRequest("The body must be a JSON object.") from None
        return _json(http, await self._batches.create(principal, body))

    async def list_batches(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        raw = http.query.get("limit", "20")
        if not raw.isdigit() or not 1 <= int(raw) <= _MAX_LIMIT:
            raise InvalidRequest(f"limit: an integer from 1 to {_MAX_LIMIT}.", param="limit")
        page = await self._batches.batches(principal, int(raw),
                                           http.query.get("after_id") or None)
        page["data"] = [_absolute(http, batch) for batch in page["data"]]
        return web.Response(body=_encode(page), content_type="application/json")

    async def retrieve(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        return _json(http, await self._batches.batch(principal, http.match_info["batch_id"]))

    async def cancel(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        return _json(http, await self._batches.cancel(principal, http.match_info["batch_id"]))

    async def delete(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        return _json(http, await self._batches.delete(principal, http.match_info["batch_id"]))

    async def results(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        body = await self._batches.results(principal, http.match_info["batch_id"])
        return web.Response(body=body, content_type="application/binary")

    def routes(self) -> list[tuple[str, str, Any]]:
        base = "/v1/messages/batches"
        return [
            ("POST", base, self.create),
            ("GET", base, self.list_batches),
            ("GET", base + "/{batch_id}", self.retrieve),
            ("POST", base + "/{batch_id}/cancel", self.cancel),
            ("DELETE", base + "/{batch_id}", self.delete),
            ("GET", base + "/{batch_id}/results", self.results),
        ]


def _absolute(http: web.Request, batch: dict[str, Any]) -> dict[str, Any]:
    """The results at this gateway's own address, as the client reached it (the SDK follows
    ``results_url``)."""
    url = batch.get("results_url")
    if isinstance(url, str) and url.startswith("/"):
        return {**batch, "results_url": f"{http.scheme}://{http.host}{url}"}
    return batch


def _json(http: web.Request, obj: dict[str, Any]) -> web.Response:
    return web.Response(body=_encode(_absolute(http, obj)), content_type="application/json")
