"""``/v1/files`` and ``/v1/batches`` in OpenAI's shape: read the request, ask
:class:`~polyroute.engine.batches.Batches`, answer JSON. Errors are OpenAI's."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from polyroute.engine.batches import Batches
from polyroute.errors import InvalidRequest
from polyroute.surface.exchange import ChatExchange

_encode = msgspec.json.Encoder().encode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode
_MAX_LIMIT = 10_000


class BatchHandlers:
    def __init__(self, exchange: ChatExchange, batches: Batches) -> None:
        self._x = exchange
        self._batches = batches

    async def upload(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        if not http.content_type.startswith("multipart/form-data"):
            raise InvalidRequest("Upload a file as multipart/form-data (fields 'file' and "
                                 "'purpose').", param="file")
        form = await http.post()  # bounded by server.max_body_bytes (client_max_size)
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(purpose, str) or not purpose:
            raise InvalidRequest("'purpose' is required.", param="purpose")
        if upload is None or isinstance(upload, str | bytes | bytearray):
            raise InvalidRequest("'file' must be a file.", param="file")
        content = upload.file.read()
        return _json(await self._batches.upload(principal, upload.filename or "upload.jsonl",
                                                purpose, content))

    async def list_files(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        limit, after = _paging(http)
        return _json(await self._batches.files(principal, limit, after))

    async def retrieve_file(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        return _json(await self._batches.file(principal, http.match_info["file_id"]))

    async def delete_file(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        return _json(await self._batches.delete_file(principal, http.match_info["file_id"]))

    async def file_content(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        body = await self._batches.content(principal, http.match_info["file_id"])
        return web.Response(body=body, content_type="application/octet-stream")

    async def create_batch(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        try:
            body = _decode_object(await self._x.body(http))
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise InvalidRequest("The body must be a JSON object.") from None
        return _json(await self._batches.create(principal, body))

    async def list_batches(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        limit, after = _paging(http)
        return _json(await self._batches.batches(principal, limit, after))

    async def retrieve_batch(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        return _json(await self._batches.batch(principal, http.match_info["batch_id"]))

    async def cancel_batch(self, http: web.Request) -> web.StreamResponse:
        principal = await self._x.principal(http)
        return _json(await self._batches.cancel(principal, http.match_info["batch_id"]))

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", "/v1/files", self.upload),
            ("GET", "/v1/files", self.list_files),
            ("GET", "/v1/files/{file_id}", self.retrieve_file),
            ("DELETE", "/v1/files/{file_id}", self.delete_file),
            ("GET", "/v1/files/{file_id}/content", self.file_content),
            ("POST", "/v1/batches", self.create_batch),
            ("GET", "/v1/batches", self.list_batches),
            ("GET", "/v1/batches/{batch_id}", self.retrieve_batch),
            ("POST", "/v1/batches/{batch_id}/cancel", self.cancel_batch),
        ]


def _json(obj: Any) -> web.Response:
    return web.Response(body=_encode(obj), content_type="application/json")


def _paging(http: web.Request) -> tuple[int, str | None]:
    raw = http.query.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= _MAX_LIMIT:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {_MAX_LIMIT}.",
                             param="limit")
    return int(raw), http.query.get("after") or None
