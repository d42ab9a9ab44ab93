"""Admin roles: who may do what through the admin API.

The master key (``auth.master_key``) is for bootstrapping: it may do everything, including
creating admin keys, after which it can be removed from the config. An admin key carries one
role:

- ``admin``: everything the master key can;
- ``team_admin``: the keys of its teams, and reading and changing those teams (not moving
  them to another organisation), their budgets and their usage; nothing else;
- ``auditor``: every read (keys, teams, organisations, budgets, usage, ledger, status, admin
  keys, the audit log, its verification); no write.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from polyroute.errors import InvalidRequest, NotFound, PermissionDenied
from polyroute.policy import keys
from polyroute.policy.entities import Name
from polyroute.storage.admin_keys import AdminKeyStore

ADMIN_PREFIX = "sk-pradm-"
Role = Literal["admin", "team_admin", "auditor"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes an admin call: ``master``, or ``admin-key:<id>`` with its role."""

    id: str
    role: Role
    teams: frozenset[str] = frozenset()

    @property
    def team_scoped(self) -> bool:
        return self.role == "team_admin"

    def check(self, write: bool, team_route: bool, what: str) -> None:
        """Refuse a call this role may never make (teams are checked by ``check_team``)."""
        if self.role == "admin":
            return
        if self.role == "auditor":
            if write:
                raise PermissionDenied(f"The auditor role is read-only: it may not {what}.",
                                       code="role_forbidden")
            return
        if not team_route:
            raise PermissionDenied(f"The team_admin role may not {what}: it manages only the "
                                   f"keys and settings of its teams.", code="role_forbidden")

    def check_team(self, team: str | None, what: str) -> None:
        """A team admin acts only on its own teams (a key of no team is not its own)."""
        if self.role != "team_admin":
            return
        if team is None or team not in self.teams:
            mine = ", ".join(sorted(self.teams)) or "none"
            raise PermissionDenied(
                f"The team_admin role may not {what} of team "
                f"{'(none)' if team is None else repr(team)}: its teams are {mine}.",
                code="role_forbidden")


MASTER = Actor("master", "admin")


class AdminKeyIn(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    role: Role
    name: Annotated[str, Meta(max_length=256)] | None = None
    teams: Annotated[list[Name], Meta(max_length=1000)] = msgspec.field(default_factory=list)
    """The teams a ``team_admin`` manages (required for that role, refused for others)."""


class AdminKeyView(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    preview: str
    role: Role
    created_at: float
    name: str | None = None
    teams: list[str] = msgspec.field(default_factory=list)
    revoked: bool = False


class AdminKeyCreated(AdminKeyView, kw_only=True, omit_defaults=True):
    key: str
    """Shown in this response only: polyroute keeps a salted hash."""


class AdminKeys:
    def __init__(self, store: AdminKeyStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def create(self, spec: AdminKeyIn) -> AdminKeyCreated:
        if spec.role == "team_admin" and not spec.teams:
            raise InvalidRequest("A team_admin key needs the teams it manages.", param="teams")
        if spec.role != "team_admin" and spec.teams:
            raise InvalidRequest(f"Only team_admin keys have teams; a {spec.role} key acts "
                                 "on all of them.", param="teams")
        made = keys.new_key(ADMIN_PREFIX)
        await self._store.add(made.key_id, made.salt, made.hash, spec.name, spec.role,
                              json.dumps(sorted(set(spec.teams))), self._clock())
        view = await self.get(made.key_id)
        return AdminKeyCreated(key=made.token, **msgspec.structs.asdict(view))

    async def list(self) -> list[AdminKeyView]:
        return [_view(row) for row in await self._store.all()]

    async def get(self, key_id: str) -> AdminKeyView:
        row = await self._store.get(key_id)
        if row is None:
            raise NotFound(f"No admin key with id '{key_id}'.", code="admin_key_not_found")
        return _view(row)

    async def revoke(self, key_id: str) -> AdminKeyView:
        await self.get(key_id)
        await self._store.revoke(key_id)
        return await self.get(key_id)

    async def authenticate(self, token: str) -> Actor | None:
        """The actor behind an admin key, or None (unknown, wrong or revoked)."""
        parsed = keys.parse(token, ADMIN_PREFIX)
        if parsed is None:
            return None
        key_id, secret = parsed
        row = await self._store.get(key_id)
        if row is None or row[7]:
            return None
        if not hmac.compare_digest(keys.digest(bytes.fromhex(row[1]), secret).hex(), row[2]):
            return None
        return Actor(f"admin-key:{key_id}", row[4], frozenset(json.loads(row[5])))


def _view(row: tuple[object, ...]) -> AdminKeyView:
    key_id, _, _, name, role, teams, created, revoked = row
    return AdminKeyView(id=str(key_id), preview=f"{ADMIN_PREFIX}{key_id}-…",
                        role=role,  # type: ignore[arg-type]
                        created_at=float(created),  # type: ignore[arg-type]
                        name=None if name is None else str(name),
                        teams=json.loads(str(teams)), revoked=bool(revoked))
