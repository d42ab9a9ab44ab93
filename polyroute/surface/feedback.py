"""``POST /v1/feedback``: a quality label for one of the caller's own requests (issue 17).

Body: ``{"request_id": "<x-request-id of the answer>", …}`` with exactly one of
``score`` (0..1), ``thumbs`` ("up" | "down") or ``verdict`` ("pass" | "fail"). The label goes
into the request's ledger row; ``polyroute router train --from-ledger`` learns from it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

import msgspec
from aiohttp import web

from polyroute.errors import InvalidRequest, NotFound, ServiceUnavailable
from polyroute.policy.types import Principal
from polyroute.storage.database import Database, StoreUnavailable
from polyroute.storage.feedback import label

_THUMBS = {"up": 1.0, "down": 0.0}
_VERDICTS = {"pass": 1.0, "fail": 0.0}


class Feedback(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    request_id: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    score: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    thumbs: Literal["up", "down"] | None = None
    verdict: Literal["pass", "fail"] | None = None

    def value(self) -> tuple[float, str]:
        given = [(k, v) for k, v in (("score", self.score), ("thumbs", self.thumbs),
                                     ("verdict", self.verdict)) if v is not None]
        if len(given) != 1:
            raise InvalidRequest("Give exactly one of score (0..1), thumbs (up, down) or "
                                 "verdict (pass, fail).", param="score")
        kind, raw = given[0]
        if kind == "thumbs":
            return _THUMBS[str(raw)], kind
        if kind == "verdict":
            return _VERDICTS[str(raw)], kind
        return float(raw), kind


_decode = msgspec.json.Decoder(Feedback).decode


class FeedbackHandler:
    def __init__(self, principal: Callable[[web.Request], Awaitable[Principal]],
                 body: Callable[[web.Request], Awaitable[bytes]], db: Database | None,
                 flush: Callable[[], Awaitable[None]] | None) -> None:
        self._principal = principal
        self._body = body
        self._db = db
        self._flush = flush
        """Writes the ledger's spooled rows: a label may come before its row is written."""

    async def post(self, http: web.Request) -> web.Response:
        principal = await self._principal(http)
        try:
            feedback = _decode(await self._body(http))
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"Invalid feedback: {exc}.", param="body") from None
        except msgspec.DecodeError:
            raise InvalidRequest("The body is not valid JSON.", param="body") from None
        score, kind = feedback.value()
        if self._db is None or self._flush is None:
            raise ServiceUnavailable("Feedback needs the ledger (storage.ledger: true).")
        try:
            found = await label(self._db, feedback.request_id, principal.key_id, score, kind,
                                time.time())
            if not found:  # its row may still wait in the spool
                await self._flush()
                found = await label(self._db, feedback.request_id, principal.key_id, score,
                                    kind, time.time())
        except StoreUnavailable:
            raise ServiceUnavailable("The ledger database is unreachable; retry shortly.") \
                from None
        if not found:
            raise NotFound(f"No request '{feedback.request_id}' of this key is in the ledger.",
                           param="request_id")
        return web.json_response({"request_id": feedback.request_id, "score": score,
                                  "kind": kind})
