"""Quality labels on answered requests (issue 17): written into the request's own ledger row
by ``POST /v1/feedback``, read back as training data by ``router train --from-ledger``."""

from __future__ import annotations

from dataclasses import dataclass

from polyroute.storage import sql
from polyroute.storage.database import Database


@dataclass(frozen=True, slots=True)
class LabelledRow:
    prompt: str
    model_group: str | None
    deployment: str
    score: float
    cost_usd: float | None
    request_id: str


async def label(db: Database, request_id: str, key_id: str | None, score: float, kind: str,
                ts: float) -> bool:
    """Set the request's label; False when no ledger row of ``key_id`` has that id (another
    key's request looks exactly like one that does not exist)."""
    statement = sql.LABEL_REQUEST if key_id is not None else sql.LABEL_ANONYMOUS_REQUEST
    args: tuple[object, ...] = (score, kind, ts, request_id)
    if key_id is not None:
        args += (key_id,)
    return bool(await db.fetch(statement, *args))


async def labelled_rows(db: Database, since: float = 0.0,
                        until: float = float("inf")) -> list[LabelledRow]:
    rows = await db.fetch(sql.LABELLED_ROWS, since, min(until, 1e300))
    return [LabelledRow(str(r[0]), r[1], str(r[2]), float(r[3]),
                        None if r[4] is None else float(r[4]), str(r[5])) for r in rows]
