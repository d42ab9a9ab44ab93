"""The audit log's rows: appended to one hash chain, read back in order or filtered.

The hash of an entry covers its content and the hash of the entry before it, so an entry
edited, removed or inserted in the middle breaks every hash after it, and the head row
(sequence number and hash of the last entry) catches the removal of entries at the end.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from polyroute.storage import sql
from polyroute.storage.database import Database, Row

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    entry_id: str
    """Unique: an entry spooled and flushed twice (a crash between insert and truncation)
    goes in once."""
    ts: float
    actor: str
    action: str
    target: str | None
    outcome: str
    detail: str
    """JSON text."""


def entry_hash(prev_hash: str, seq: int, entry: AuditEntry) -> str:
    body = json.dumps([seq, entry.entry_id, entry.ts, entry.actor, entry.action, entry.target,
                       entry.outcome, entry.detail], separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def entry_of(row: Row) -> tuple[int, AuditEntry, str, str]:
    """(seq, entry, prev_hash, hash) of a row in ``sql.AUDIT_COLUMNS`` order."""
    seq, entry_id, ts, actor, action, target, outcome, detail, prev, digest = row
    return (int(seq), AuditEntry(str(entry_id), float(ts), str(actor), str(action),
                                 None if target is None else str(target), str(outcome),
                                 str(detail)), str(prev), str(digest))


class AuditStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(self, entries: Sequence[AuditEntry]) -> int:
        """Chain ``entries`` after the current head in one transaction; entries already in
        the log (by ``entry_id``) are skipped. The number appended."""
        added = 0
        async with self._db.transaction() as tx:
            seq, head = (await tx.fetch(sql.LOCK_AUDIT_HEAD))[0]
            seq, head = int(seq), str(head)
            for entry in entries:
                if await tx.fetch(sql.AUDIT_ENTRY_EXISTS, entry.entry_id):
                    continue
                seq += 1
                digest = entry_hash(head, seq, entry)
                await tx.execute(sql.INSERT_AUDIT, seq, entry.entry_id, entry.ts, entry.actor,
                                 entry.action, entry.target, entry.outcome, entry.detail,
                                 head, digest)
                head = digest
                added += 1
            if added:
                await tx.execute(sql.SET_AUDIT_HEAD, seq, head)
        return added

    async def head(self) -> tuple[int, str]:
        seq, digest = (await self._db.fetch(sql.SELECT_AUDIT_HEAD))[0]
        return int(seq), str(digest)

    async def chain(self, after: int, limit: int) -> list[Row]:
        return await self._db.fetch(sql.SELECT_AUDIT_CHAIN, after, limit)

    async def query(self, since: float, until: float, filters: dict[str, str],
                    limit: int) -> list[Row]:
        names = tuple(sorted(filters))
        unknown = [n for n in names if n not in sql.AUDIT_FILTERS]
        if unknown:
            raise ValueError(f"unknown audit filter {unknown[0]!r}; use one of "
                             f"{', '.join(sql.AUDIT_FILTERS)}")
        return await self._db.fetch(sql.audit_query(names), since, until,
                                    *(filters[n] for n in names), limit)
