"""Administration as plain async operations: the HTTP routes and the CLI's store-direct mode
both call these. Writes go to the key store and then refresh the directory, so this replica
sees a change at once and the others within ``auth.refresh_s``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from polyroute.errors import InvalidRequest, NotFound, invalid_request
from polyroute.independence.check import check
from polyroute.independence.measures import IndependenceView, measure
from polyroute.independence.topology import Topology
from polyroute.policy import keys
from polyroute.policy.directory import Directory
from polyroute.policy.entities import (
    KeyCreated,
    KeyIn,
    KeyView,
    OrgIn,
    OrgView,
    Settings,
    TeamIn,
    TeamView,
    settings_of,
)
from polyroute.pricing.cost import NANOS_PER_USD
from polyroute.state.limits import Periods
from polyroute.storage.database import Database
from polyroute.storage.key_store import KeyStore
from polyroute.storage.usage import UsageRow, ledger_for, traffic, usage

__all__ = ["AdminService", "BudgetStatus", "IndependenceView", "UsageRow"]
"""UsageRow too: the admin API answers with it (its surface imports no storage module)."""

_encode = msgspec.json.Encoder().encode


class BudgetStatus(msgspec.Struct, omit_defaults=True):
    scope: str
    spent_today_usd: float
    spent_this_month_usd: float
    spent_total_usd: float
    reserved_usd: float
    """Worst-case cost held by requests in flight."""
    in_flight: int
    daily_budget_usd: float | None = None
    monthly_budget_usd: float | None = None
    total_budget_usd: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None


CounterReader = Callable[[str, Periods], Any]
"""async (scope, periods) → (spent today, month, total, reserved, in flight) in nano-USD."""


class AdminService:
    def __init__(self, directory: Directory, store: KeyStore, db: Database,
                 counters: CounterReader | None = None,
                 clock: Callable[[], float] = time.time,
                 topology: Topology | None = None) -> None:
        self.directory = directory
        self._topology = topology or Topology({}, {}, {})
        self._store = store
        self._db = db
        self._counters = counters
        self._clock = clock
        self.guardrails: frozenset[str] | None = None
        """The names of the config's guardrails a governance policy may name (kept current
        by a reload); None: not checked (a service without a gateway's config)."""

    # -- keys -----------------------------------------------------------------------------
    async def create_key(self, spec: KeyIn) -> KeyCreated:
        self._check_team(spec.team)
        self._check_guardrails(spec)
        expires = spec.expires_at
        if spec.expires_in_s is not None:
            expires = self._clock() + spec.expires_in_s
        made = keys.new_key()
        await self._store.add_key(made.key_id, made.salt, made.hash, spec.name, spec.team,
                                  _settings_json(spec), expires, self._clock())
        await self.directory.refresh()
        view = self._key(made.key_id)
        return KeyCreated(key=made.token, **msgspec.structs.asdict(view))

    async def update_key(self, key_id: str, patch: dict[str, Any]) -> KeyView:
        view = self._key(key_id)
        merged = {**_builtins(view), **patch}
        for name in ("id", "preview", "created_at", "org", "revoked"):
            merged.pop(name, None)
        spec = _convert(merged, KeyIn)
        self._check_team(spec.team)
        self._check_guardrails(spec)
        expires = spec.expires_at
        if spec.expires_in_s is not None:
            expires = self._clock() + spec.expires_in_s
        await self._store.update_key(key_id, spec.name, spec.team, _settings_json(spec),
                                     expires)
        await self.directory.refresh()
        return self._key(key_id)

    async def revoke_key(self, key_id: str) -> KeyView:
        self._key(key_id)
        await self._store.revoke_key(key_id)
        await self.directory.refresh()
        return self._key(key_id)

    def key(self, key_id: str) -> KeyView:
        return self._key(key_id)

    def _key(self, key_id: str) -> KeyView:
        view = self.directory.key_view(key_id)
        if view is None:
            raise NotFound(f"No key with id '{key_id}'.", code="key_not_found")
        return view

    # -- teams and organisations ----------------------------------------------------------
    async def put_team(self, spec: TeamIn) -> TeamView:
        if spec.org is not None and self.directory.org_view(spec.org) is None:
            raise InvalidRequest(f"No organisation '{spec.org}': create it first.",
                                 param="org")
        self._check_guardrails(spec)
        await self._store.put_team(spec.id, spec.org, _settings_json(spec), self._clock())
        await self.directory.refresh()
        return self.team(spec.id)

    async def update_team(self, team_id: str, patch: dict[str, Any]) -> TeamView:
        merged = {**_builtins(self.team(team_id)), **patch, "id": team_id}
        merged.pop("created_at", None)
        return await self.put_team(_convert(merged, TeamIn))

    async def delete_team(self, team_id: str) -> list[str]:
        """Delete the team and revoke its keys (for good: a team created again under the same
        name does not bring them back); the ids of the keys revoked."""
        self.team(team_id)
        revoked = await self._store.delete_team(team_id)
        await self.directory.refresh()
        return revoked

    def team(self, team_id: str) -> TeamView:
        view = self.directory.team_view(team_id)
        if view is None:
            raise NotFound(f"No team '{team_id}'.", code="team_not_found")
        return view

    async def put_org(self, spec: OrgIn) -> OrgView:
        self._check_guardrails(spec)
        await self._store.put_org(spec.id, _settings_json(spec), self._clock())
        await self.directory.refresh()
        return self.org(spec.id)

    async def update_org(self, org_id: str, patch: dict[str, Any]) -> OrgView:
        merged = {**_builtins(self.org(org_id)), **patch, "id": org_id}
        merged.pop("created_at", None)
        return await self.put_org(_convert(merged, OrgIn))

    async def delete_org(self, org_id: str) -> tuple[list[str], list[str]]:
        """Delete the organisation with its teams, and revoke their keys; (teams deleted,
        keys revoked)."""
        self.org(org_id)
        deleted = await self._store.delete_org(org_id)
        await self.directory.refresh()
        return deleted

    def org(self, org_id: str) -> OrgView:
        view = self.directory.org_view(org_id)
        if view is None:
            raise NotFound(f"No organisation '{org_id}'.", code="org_not_found")
        return view

    def _check_team(self, team: str | None) -> None:
        if team is not None and self.directory.team_view(team) is None:
            raise InvalidRequest(f"No team '{team}': create it first.", param="team")

    def _check_guardrails(self, spec: Settings) -> None:
        """A policy naming a guardrail the config lacks would refuse every request of its
        scope (fail closed): refused when written instead."""
        policy = spec.governance
        if policy is None or self.guardrails is None:
            return
        unknown = [name for name in policy.guardrails if name not in self.guardrails]
        if unknown:
            known = ", ".join(sorted(self.guardrails)) or "none"
            raise InvalidRequest(
                f"The governance policy names the guardrail '{unknown[0]}', which this "
                f"gateway's config does not define (its guardrails: {known}); define it under "
                "guardrails: first, or remove it from the policy.",
                param="governance.guardrails")

    # -- budgets and usage ----------------------------------------------------------------
    async def budget(self, scope: str) -> BudgetStatus:
        settings = self.directory.settings(scope)
        if settings is None:
            raise NotFound(f"No {scope.split(':', 1)[0]} scope '{scope}'.")
        day = month = total = reserved = inflight = 0
        if self._counters is not None:
            now = self._clock()
            day, month, total, reserved, inflight = await self._counters(scope, Periods.at(now))
        n = NANOS_PER_USD
        return BudgetStatus(
            scope=scope, spent_today_usd=day / n, spent_this_month_usd=month / n,
            spent_total_usd=total / n, reserved_usd=reserved / n, in_flight=inflight,
            daily_budget_usd=settings.daily_budget_usd,
            monthly_budget_usd=settings.monthly_budget_usd,
            total_budget_usd=settings.total_budget_usd, rpm=settings.rpm, tpm=settings.tpm,
            max_concurrent=settings.max_concurrent)

    async def usage(self, by: list[str], since: float, until: float,
                    filters: dict[str, str]) -> list[UsageRow]:
        try:
            return await usage(self._db, by, since, until, filters)
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="by") from None

    async def ledger(self, request_id: str) -> list[dict[str, Any]]:
        return await ledger_for(self._db, request_id)

    async def independence(self, since: float, until: float) -> IndependenceView:
        """Dependence on each vendor, cloud and region, and the single points of failure,
        from the ledger between two times (docs/independence.md)."""
        rows = await traffic(self._db, since, until)
        return IndependenceView(measure(rows, self._topology, since, until),
                                check(rows, self._topology))


def _settings_json(value: Settings) -> str:
    return _encode(settings_of(value)).decode()


def _builtins(value: msgspec.Struct) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(value)
    return out


def _convert(data: dict[str, Any], type_: type[Any]) -> Any:
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as exc:
        raise invalid_request(str(exc)) from None  # a 400 whose ``param`` names the field
