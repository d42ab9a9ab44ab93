"""Admin keys in the database: a salted hash, a role and the teams a team admin manages."""

from __future__ import annotations

from polyroute.storage import sql
from polyroute.storage.database import Database, Row


class AdminKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, key_id: str, salt: str, digest: str, name: str | None, role: str,
                  teams: str, now: float) -> None:
        await self._db.execute(sql.INSERT_ADMIN_KEY, key_id, salt, digest, name, role, teams,
                               now)

    async def all(self) -> list[Row]:
        """(id, salt, hash, name, role, teams json, created_at, revoked) of every key."""
        return await self._db.fetch(sql.SELECT_ADMIN_KEYS)

    async def get(self, key_id: str) -> Row | None:
        rows = await self._db.fetch(sql.SELECT_ADMIN_KEY, key_id)
        return rows[0] if rows else None

    async def revoke(self, key_id: str) -> None:
        await self._db.execute(sql.REVOKE_ADMIN_KEY, key_id)
