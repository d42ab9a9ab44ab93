"""Every key, team and organisation, in memory: authentication and admission never wait on
the database. Refreshed every ``auth.refresh_s`` from the key store's revision counter (one
cheap query when nothing changed), at once after an admin change on this replica, and for a
key id it has not seen (one created on another replica a moment ago). When the database is
down it keeps answering from what it holds; only a key it has never seen gets a 503.

A row that cannot be read (settings that fail validation, such as a budget of 1e300 written
by hand or by an older version) never stops a rebuild: it is *quarantined* — logged, listed
in ``quarantined`` (and so in ``/admin/status``) — and stands in the directory with empty
settings, so the admin API and ``polyroute teams|orgs|keys update`` can repair it. Keys that
depend on it (its own, its team's, its organisation's) are refused until then: fail closed,
because skipping a team's row would otherwise lift its limits and budgets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from polyroute.config.compiled import LimitsSettings
from polyroute.errors import ServiceUnavailable
from polyroute.policy.entities import KeyView, OrgView, Settings, TeamView
from polyroute.policy.keys import preview
from polyroute.policy.types import Principal
from polyroute.pricing.cost import NANOS_PER_USD
from polyroute.state.limits import Scope
from polyroute.storage.database import Row, StoreUnavailable
from polyroute.storage.key_store import KeyStore

log = logging.getLogger("polyroute.keys")

_decode_settings = msgspec.json.Decoder(Settings).decode
_MISS_TTL_S = 2.0  # an unknown key id is not looked up again for this long
_MAX_MISSES = 10_000


@dataclass(frozen=True, slots=True)
class KeyPrincipal(Principal):
    """A caller with a virtual key, with everything admission needs precomputed."""

    scopes: tuple[Scope, ...] = ()
    """Key, team and org (those that exist): spend is charged to all of them."""
    limited: bool = False
    budgeted: bool = False
    fail_open: bool = True
    salt: bytes = b""
    digest: bytes = b""
    expires_at: float | None = None
    revoked: bool = False
    problem: str | None = None
    """Why this key is refused although valid: its row, or its team's or organisation's,
    is quarantined."""


@dataclass(slots=True)
class _Key:
    id: str
    salt: bytes
    digest: bytes
    name: str | None
    team: str | None
    settings: Settings
    expires_at: float | None
    created_at: float
    revoked: bool


@dataclass(slots=True)
class _Team:
    id: str
    org: str | None
    settings: Settings
    created_at: float


class Directory:
    def __init__(self, store: KeyStore, limits: LimitsSettings) -> None:
        self._store = store
        self._limits = limits
        self.revision = 0
        self.loaded = False
        self._orgs: dict[str, tuple[Settings, float]] = {}
        self._teams: dict[str, _Team] = {}
        self._keys: dict[str, _Key] = {}
        self.principals: dict[str, KeyPrincipal] = {}
        self.active_keys = 0
        self.any_keys = False
        """Ever: revoking every key must not turn the gateway back into open mode."""
        self._misses: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self.quarantined: dict[str, str] = {}
        """Scope ('k:…', 't:…', 'o:…') → why its row could not be read."""

    async def refresh(self) -> bool:
        """Pick up changes; True if there were any. Raises StoreUnavailable."""
        async with self._lock:
            changes = await self._store.changes_since(self.revision)
            if changes is None:
                self.loaded = True
                return False
            for org_id, settings, created, deleted, _ in changes.orgs:
                if deleted:
                    self._orgs.pop(org_id, None)
                    self.quarantined.pop(f"o:{org_id}", None)
                else:
                    self._orgs[org_id] = (self._settings(f"o:{org_id}", settings),
                                          _time(created))
            for team_id, org, settings, created, deleted, _ in changes.teams:
                if deleted:
                    self._teams.pop(team_id, None)
                    self.quarantined.pop(f"t:{team_id}", None)
                else:
                    self._teams[team_id] = _Team(team_id, org,
                                                 self._settings(f"t:{team_id}", settings),
                                                 _time(created))
            for row in changes.keys:
                key = self._key(row)
                self._keys[key.id] = key
                self._misses.pop(key.id, None)
            self.revision = changes.revision
            self._rebuild()
            self.loaded = True
            return True

    async def refresh_forever(self, interval_s: float) -> None:
        failing = False
        while True:
            try:
                await self.refresh()
                if failing:
                    log.warning("key store reachable again")
                failing = False
            except StoreUnavailable as exc:
                if not failing:
                    log.warning("key store unavailable (%s): serving keys from the cache", exc)
                failing = True
            except Exception:  # a bug must not end the refreshing for good
                log.exception("key directory refresh failed; retrying")
            await asyncio.sleep(interval_s)

    async def find(self, key_id: str) -> KeyPrincipal | None:
        """A key not in the cache: ask the store once (it may be brand new)."""
        now = time.monotonic()
        missed = self._misses.get(key_id)
        if missed is not None and now - missed < _MISS_TTL_S:
            return None
        try:
            row = await self._store.key(key_id)
        except StoreUnavailable:
            raise ServiceUnavailable(
                "The key store is unreachable and this key is not in the gateway's cache; "
                "retry shortly.") from None
        if row is None:
            if len(self._misses) >= _MAX_MISSES:
                self._misses.clear()
            self._misses[key_id] = now
            return None
        try:
            await self.refresh()  # brings its team and org along
        except StoreUnavailable:
            raise ServiceUnavailable("The key store is unreachable; retry shortly.") from None
        return self.principals.get(key_id)

    def _settings(self, scope: str, raw: Any) -> Settings:
        """The row's settings, or empty ones with the scope quarantined."""
        try:
            settings = _decode_settings(raw)
            _scope(scope, settings)  # everything admission computes from it must compute
        except Exception as exc:
            self._quarantine(scope, f"unreadable settings: {exc}")
            return Settings()
        self.quarantined.pop(scope, None)
        return settings

    def _key(self, row: Row) -> _Key:
        try:
            key = _key(row)
        except Exception as exc:
            self._quarantine(f"k:{row[0]}", f"unreadable row: {exc}")
            return _Key(str(row[0]), b"", b"", None, None, Settings(), None, 0.0,
                        revoked=bool(row[8]) if len(row) > 8 else True)
        key.settings = self._settings(f"k:{key.id}", row[5])
        return key

    def _quarantine(self, scope: str, why: str) -> None:
        why = why[:300]
        if self.quarantined.get(scope) != why:
            log.error("key directory: quarantined %s (%s); the keys that depend on it are "
                      "refused until it is repaired (polyroute keys|teams|orgs update)",
                      scope, why)
        self.quarantined[scope] = why

    def _rebuild(self) -> None:
        principals = {}
        for key in self._keys.values():
            try:
                principals[key.id] = self._principal(key)
            except Exception as exc:  # never let one key stop the directory
                self._quarantine(f"k:{key.id}", f"cannot build its limits: {exc}")
                principals[key.id] = KeyPrincipal(key_id=key.id, revoked=key.revoked,
                                                  problem=self._problem(key))
        self.principals = principals
        self.active_keys = sum(1 for k in self._keys.values() if not k.revoked)
        self.any_keys = bool(self._keys)

    def _principal(self, key: _Key) -> KeyPrincipal:
        team = self._teams.get(key.team) if key.team else None
        org_id = team.org if team else None
        org = self._orgs.get(org_id) if org_id else None
        levels: list[tuple[str, Settings]] = [(f"k:{key.id}", key.settings)]
        if team is not None:
            levels.append((f"t:{team.id}", team.settings))
        if org is not None and org_id is not None:
            levels.append((f"o:{org_id}", org[0]))
        scopes = tuple(_scope(name, s) for name, s in levels)
        allowed = _intersection(s.models for _, s in levels)
        outage = (team.settings.on_state_outage if team else None) or \
            key.settings.on_state_outage or self._limits.on_state_outage
        return KeyPrincipal(
            problem=self._problem(key),
            key_id=key.id, team=key.team, org=org_id, allowed_models=allowed,
            mcp_servers=_intersection(s.mcp_servers for _, s in levels),
            mcp_tools=_tools_allowed([s.mcp_tools for _, s in levels]),
            governance=tuple((name, s.governance) for name, s in levels
                             if s.governance is not None),
            scopes=scopes, limited=any(s.limited for s in scopes),
            budgeted=any(s.budgets for s in scopes), fail_open=outage == "open",
            salt=key.salt, digest=key.digest, expires_at=key.expires_at,
            revoked=key.revoked or self._orphaned(key))

    def _orphaned(self, key: _Key) -> bool:
        """The key's team (or the team's organisation) is gone. Deleting one revokes its keys
        in the same transaction; this also catches keys whose team was deleted by an older
        version, which did not: without its team, a key would lose the team's allow-list,
        limits and budgets, so it fails closed instead."""
        if key.team is None:
            return False
        team = self._teams.get(key.team)
        return team is None or (team.org is not None and team.org not in self._orgs)

    def _problem(self, key: _Key) -> str | None:
        if not self.quarantined:
            return None
        team = self._teams.get(key.team) if key.team else None
        scopes = [f"k:{key.id}", f"t:{key.team}", f"o:{team.org if team else None}"]
        broken = [s for s in scopes if s in self.quarantined]
        if not broken:
            return None
        return (f"The settings of {', '.join(broken)} cannot be read, so this key is refused "
                "until an operator repairs them.")

    # -- views for the admin API -------------------------------------------------------------
    def key_view(self, key_id: str) -> KeyView | None:
        key = self._keys.get(key_id)
        if key is None:
            return None
        team = self._teams.get(key.team) if key.team else None
        return KeyView(id=key.id, preview=preview(key.id), created_at=key.created_at,
                       name=key.name, team=key.team, org=team.org if team else None,
                       expires_at=key.expires_at, revoked=key.revoked or self._orphaned(key),
                       **_fields(key.settings))

    def keys(self, team: str | None = None) -> list[KeyView]:
        views = (self.key_view(k) for k, v in self._keys.items()
                 if team is None or v.team == team)
        return [v for v in views if v is not None]

    def team_view(self, team_id: str) -> TeamView | None:
        team = self._teams.get(team_id)
        if team is None:
            return None
        return TeamView(id=team.id, org=team.org, created_at=team.created_at,
                        **_fields(team.settings))

    def teams(self) -> list[TeamView]:
        return [v for t in self._teams if (v := self.team_view(t)) is not None]

    def org_view(self, org_id: str) -> OrgView | None:
        org = self._orgs.get(org_id)
        if org is None:
            return None
        return OrgView(id=org_id, created_at=org[1], **_fields(org[0]))

    def orgs(self) -> list[OrgView]:
        return [v for o in self._orgs if (v := self.org_view(o)) is not None]

    def settings(self, scope: str) -> Settings | None:
        kind, _, name = scope.partition(":")
        if kind == "k":
            key = self._keys.get(name)
            return key.settings if key else None
        if kind == "t":
            team = self._teams.get(name)
            return team.settings if team else None
        org = self._orgs.get(name)
        return org[0] if org else None


def _key(row: Row) -> _Key:
    """The row's fields; its settings are read (or quarantined) by ``Directory._settings``."""
    key_id, salt, digest, name, team, _, expires_at, created_at, revoked, _ = row
    return _Key(key_id, bytes.fromhex(salt), bytes.fromhex(digest), name, team,
                Settings(), None if expires_at is None else float(expires_at),
                float(created_at), bool(revoked))


def _intersection(lists: Iterable[list[str] | None]) -> frozenset[str] | None:
    """What every level that has a list allows; None: no level has one (all allowed)."""
    allowed: frozenset[str] | None = None
    for names in lists:
        if names is not None:
            allowed = frozenset(names) if allowed is None else allowed & set(names)
    return allowed


def _tools_allowed(lists: list[list[str] | None]) -> frozenset[str] | None:
    """MCP tool allow-lists of several levels, as one list a tool must be on: a level's
    ``server__*`` lets by every tool of that server another level names."""
    given = [frozenset(names) for names in lists if names is not None]
    if not given:
        return None
    candidates = set().union(*given)
    return frozenset(name for name in candidates
                     if all(_lets(level, name) for level in given))


def _lets(level: frozenset[str], name: str) -> bool:
    server, _, _ = name.partition("__")
    return name in level or f"{server}__*" in level


def _time(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _scope(name: str, s: Settings) -> Scope:
    budgets = tuple((period, round(usd * NANOS_PER_USD)) for period, usd in (
        ("d", s.daily_budget_usd), ("m", s.monthly_budget_usd), ("t", s.total_budget_usd))
        if usd is not None)
    return Scope(name, s.rpm, s.tpm, s.max_concurrent, budgets)


def _fields(s: Settings) -> dict[str, Any]:
    return {f: getattr(s, f) for f in Settings.__struct_fields__}
