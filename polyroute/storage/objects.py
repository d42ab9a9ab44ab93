"""What polyroute keeps of objects that live upstream or across requests (issue 16): the files
and batches a key owns, and the conversations of stateful Responses. Every read names the
owner, so a key asking for another's id finds nothing (the surface answers 404)."""

from __future__ import annotations

from dataclasses import dataclass

from polyroute.storage import sql
from polyroute.storage.database import Database, Row


@dataclass(frozen=True, slots=True)
class Owned:
    id: str
    """polyroute's id, what the client sees."""
    kind: str
    """'file', 'batch' or 'message_batch'."""
    owner: str
    upstream_id: str
    deployment: str
    created_at: float
    object: str
    """The object last shown to the client (JSON)."""
    detail: str
    """What polyroute keeps beside it (JSON)."""
    settled: bool = False


def _owned(row: Row) -> Owned:
    oid, kind, owner, upstream_id, deployment, created, obj, detail, settled, _ = row
    return Owned(str(oid), str(kind), str(owner), str(upstream_id), str(deployment),
                 float(created), str(obj), str(detail), bool(settled))


class ObjectStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, item: Owned) -> None:
        await self._db.execute(sql.INSERT_OWNED, item.id, item.kind, item.owner,
                               item.upstream_id, item.deployment, item.created_at,
                               item.object, item.detail, int(item.settled), 0)

    async def adopt(self, item: Owned) -> Owned:
        """Add ``item`` unless its upstream object is known already; the one kept."""
        await self._db.execute(sql.INSERT_OWNED_ONCE, item.id, item.kind, item.owner,
                               item.upstream_id, item.deployment, item.created_at,
                               item.object, item.detail, int(item.settled), 0)
        kept = await self.by_upstream(item.upstream_id, item.deployment, item.kind)
        return kept if kept is not None else item

    async def get(self, oid: str, owner: str, kind: str) -> Owned | None:
        rows = await self._db.fetch(sql.SELECT_OWNED, oid, owner, kind)
        return _owned(rows[0]) if rows else None

    async def by_upstream(self, upstream_id: str, deployment: str, kind: str) -> Owned | None:
        rows = await self._db.fetch(sql.SELECT_OWNED_BY_UPSTREAM, upstream_id, deployment,
                                    kind)
        return _owned(rows[0]) if rows else None

    async def owned_by(self, owner: str, kind: str, limit: int) -> list[Owned]:
        """Newest first."""
        return [_owned(r) for r in await self._db.fetch(sql.LIST_OWNED, owner, kind, limit)]

    async def unsettled(self, kind: str, limit: int) -> list[Owned]:
        return [_owned(r) for r in await self._db.fetch(sql.UNSETTLED_OWNED, kind, limit)]

    async def update(self, oid: str, obj: str) -> None:
        await self._db.execute(sql.UPDATE_OWNED_OBJECT, obj, oid)

    async def settle(self, oid: str, obj: str) -> bool:
        """Mark settled; True for the one caller (of every replica) that did."""
        return bool(await self._db.fetch(sql.SETTLE_OWNED, obj, oid))

    async def delete(self, oid: str, owner: str) -> None:
        await self._db.execute(sql.DELETE_OWNED, oid, owner)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    history: str
    """The conversation up to and including this response (canonical messages, JSON)."""
    body: str
    """The response object (JSON)."""


class ResponseStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, rid: str, owner: str, now: float, expires_at: float, history: str,
                  body: str) -> None:
        await self._db.execute(sql.INSERT_RESPONSE, rid, owner, now, expires_at, history, body)

    async def get(self, rid: str, owner: str, now: float) -> StoredResponse | None:
        rows = await self._db.fetch(sql.SELECT_RESPONSE, rid, owner, now)
        return StoredResponse(str(rows[0][0]), str(rows[0][1])) if rows else None

    async def delete(self, rid: str, owner: str, now: float) -> bool:
        return bool(await self._db.fetch(sql.DELETE_RESPONSE, rid, owner, now))

    async def purge(self, now: float) -> None:
        """Forget the responses whose retention is over."""
        await self._db.execute(sql.PURGE_RESPONSES, now)
