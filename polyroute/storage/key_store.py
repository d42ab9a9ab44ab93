"""Organisations, teams and keys in the database. Every change bumps the one ``revision``
counter inside its transaction and stamps the row with it, so a replica catches up with
``WHERE version > <last revision it saw>``: writers serialise on that row, so versions commit
in order and none is skipped."""

from __future__ import annotations

from dataclasses import dataclass

from polyroute.storage import sql
from polyroute.storage.database import Database, Row


@dataclass(frozen=True, slots=True)
class Changes:
    revision: int
    orgs: list[Row]
    """(id, settings json, created_at, deleted, version)"""
    teams: list[Row]
    """(id, org, settings json, created_at, deleted, version)"""
    keys: list[Row]
    """(id, salt, hash, name, team, settings json, expires_at, created_at, revoked, version)"""


class KeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def changes_since(self, revision: int) -> Changes | None:
        """Everything changed after ``revision``; None when nothing did (one cheap query)."""
        current = int((await self._db.fetch(sql.CURRENT_REVISION))[0][0])
        if current == revision:
            return None
        async with self._db.transaction() as tx:
            current = int((await tx.fetch(sql.CURRENT_REVISION))[0][0])
            orgs = await tx.fetch(sql.SELECT_ORGS, revision)
            teams = await tx.fetch(sql.SELECT_TEAMS, revision)
            keys = await tx.fetch(sql.SELECT_KEYS, revision)
        return Changes(current, orgs, teams, keys)

    async def key(self, key_id: str) -> Row | None:
        rows = await self._db.fetch(sql.SELECT_KEY, key_id)
        return rows[0] if rows else None

    async def put_org(self, org_id: str, settings: str, now: float) -> None:
        async with self._db.transaction() as tx:
            version = await _bump(tx)
            await tx.execute(sql.UPSERT_ORG, org_id, settings, now, version)

    async def put_team(self, team_id: str, org: str | None, settings: str, now: float) -> None:
        async with self._db.transaction() as tx:
            version = await _bump(tx)
            await tx.execute(sql.UPSERT_TEAM, team_id, org, settings, now, version)

    async def add_key(self, key_id: str, salt: str, digest: str, name: str | None,
                      team: str | None, settings: str, expires_at: float | None,
                      now: float) -> None:
        async with self._db.transaction() as tx:
            version = await _bump(tx)
            await tx.execute(sql.INSERT_KEY, key_id, salt, digest, name, team, settings,
                             expires_at, now, version)

    async def update_key(self, key_id: str, name: str | None, team: str | None, settings: str,
                         expires_at: float | None) -> None:
        async with self._db.transaction() as tx:
            version = await _bump(tx)
            await tx.execute(sql.UPDATE_KEY, name, team, settings, expires_at, version, key_id)

    async def revoke_key(self, key_id: str) -> None:
        async with self._db.transaction() as tx:
            await tx.execute(sql.REVOKE_KEY, await _bump(tx), key_id)

    async def delete_team(self, team_id: str) -> list[str]:
        """Delete the team and revoke its keys; the ids of the keys revoked."""
        async with self._db.transaction() as tx:
            version = await _bump(tx)
            await tx.execute(sql.DELETE_TEAM, version, team_id)
            rows = await tx.fetch(sql.REVOKE_TEAM_KEYS, version, team_id)
        return sorted(str(r[0]) for r in rows)

    async def delete_org(self, org_id: str) -> tuple[list[str], list[str]]:
        """Delete the organisation and its teams and revoke their keys; (teams deleted,
        keys revoked)."""
        async with self._db.transaction() as tx:
            version = await _bump(tx)
            await tx.execute(sql.DELETE_ORG, version, org_id)
            teams = sorted(str(r[0]) for r in await tx.fetch(sql.DELETE_ORG_TEAMS, version,
                                                             org_id))
            revoked: list[str] = []
            for team in teams:
                revoked += (str(r[0]) for r in await tx.fetch(sql.REVOKE_TEAM_KEYS, version,
                                                               team))
        return teams, sorted(revoked)


async def _bump(tx: Database) -> int:
    return int((await tx.fetch(sql.BUMP_REVISION))[0][0])
