"""The admin API over HTTP: thin handlers around :class:`~.service.AdminService`. Every route
requires ``Authorization: Bearer <master key or admin key>`` (or ``x-api-key``); an admin
key's role (``policy.roles``) decides what it may do. Every write, and every call a role is
refused, goes to the audit log. Errors have OpenAI's shape. Nothing here ever echoes a key
back, except the one response that creates it."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from polyroute.errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    PermissionDenied,
    invalid_request,
)
from polyroute.policy.admin import AdminService
from polyroute.policy.audit import AuditLog
from polyroute.policy.entities import KeyIn, OrgIn, TeamIn
from polyroute.policy.roles import MASTER, Actor, AdminKeyIn, AdminKeys
from polyroute.surface.admin.openapi import openapi
from polyroute.surface.admin.timespec import parse_time
from polyroute.surface.http import credentials, guarded
from polyroute.surface.openai.handlers import encode_error

_encode = msgspec.json.Encoder().encode
_MAX_BODY = 64 * 1024
Status = Callable[[], Awaitable[dict[str, Any]]]
Handler = Callable[[web.Request], Awaitable[web.Response]]
# Request keys: who is calling, and what the audit log says the call touched.
_ACTOR = web.RequestKey("polyroute.admin.actor", Actor)
_TARGET = web.RequestKey("polyroute.admin.target", str)
_BODY = web.RequestKey("polyroute.admin.body", object)
_TEAM_ROUTE = True
"""Routes a team admin may call (each handler checks the team it touches)."""


class AdminRoutes:
    def __init__(self, service: AdminService, master_key: str | None, status: Status,
                 admin_keys: AdminKeys | None = None, audit: AuditLog | None = None) -> None:
        self._service = service
        self._master = master_key.encode() if master_key else None
        self._status = status
        self._admin_keys = admin_keys
        self._audit = audit

    def add_to(self, app: web.Application) -> None:
        s = self
        t = _TEAM_ROUTE
        # (method, path, handler, what it does — for refusals and the audit log, team route)
        table: list[tuple[str, str, Handler, str, bool]] = [
            ("GET", "/admin/keys", s.list_keys, "list keys", t),
            ("POST", "/admin/keys", s.create_key, "create keys", t),
            ("GET", "/admin/keys/{id}", s.get_key, "read keys", t),
            ("PATCH", "/admin/keys/{id}", s.patch_key, "change keys", t),
            ("DELETE", "/admin/keys/{id}", s.revoke_key, "revoke keys", t),
            ("GET", "/admin/keys/{id}/budget", s.key_budget, "read key budgets", t),
            ("GET", "/admin/teams", s.list_teams, "list teams", t),
            ("POST", "/admin/teams", s.create_team, "create teams", False),
            ("GET", "/admin/teams/{id}", s.get_team, "read teams", t),
            ("PATCH", "/admin/teams/{id}", s.patch_team, "change teams", t),
            ("DELETE", "/admin/teams/{id}", s.delete_team, "delete teams", False),
            ("GET", "/admin/teams/{id}/budget", s.team_budget, "read team budgets", t),
            ("GET", "/admin/orgs", s.list_orgs, "list organisations", False),
            ("POST", "/admin/orgs", s.create_org, "create organisations", False),
            ("GET", "/admin/orgs/{id}", s.get_org, "read organisations", False),
            ("PATCH", "/admin/orgs/{id}", s.patch_org, "change organisations", False),
            ("DELETE", "/admin/orgs/{id}", s.delete_org, "delete organisations", False),
            ("GET", "/admin/orgs/{id}/budget", s.org_budget, "read organisation budgets",
             False),
            ("GET", "/admin/usage", s.usage, "read usage", t),
            ("GET", "/admin/ledger/{request_id}", s.ledger, "read the ledger", t),
            ("GET", "/admin/status", s.status, "read the status", False),
            ("GET", "/admin/whoami", s.whoami, "read its own role", t),
            ("GET", "/admin/admin-keys", s.list_admin_keys, "list admin keys", False),
            ("POST", "/admin/admin-keys", s.create_admin_key, "create admin keys", False),
            ("DELETE", "/admin/admin-keys/{id}", s.revoke_admin_key, "revoke admin keys",
             False),
            ("GET", "/admin/audit", s.audit_entries, "read the audit log", False),
            ("GET", "/admin/audit/verify", s.audit_verify, "verify the audit log", False),
            ("GET", "/admin/independence", s.independence, "read vendor independence",
             False),
        ]
        for method, path, handler, what, team_route in table:
            app.router.add_route(method, path, guarded(
                self._authorized(handler, method, what, team_route), encode_error))
        app.router.add_get("/admin/openapi.json", self.openapi)

    def add_routes(self, app: web.Application,
                   table: list[tuple[str, str, Handler, bool]]) -> None:
        """Routes of another module (the console's reads, issue 13) behind the same check:
        (method, path, handler, team route). An admin and an auditor may read them all; a
        team admin only the team routes, whose handlers limit what they read to its teams
        (``actor_of``)."""
        for method, path, handler, team_route in table:
            app.router.add_route(method, path, guarded(
                self._authorized(handler, method, "read the console", team_route),
                encode_error))

    async def _actor(self, request: web.Request) -> Actor:
        given = credentials(request)
        if self._master is None and self._admin_keys is None:
            raise PermissionDenied(
                "The admin API is off: set auth.master_key (e.g. ${POLYROUTE_MASTER_KEY}) "
                "in the config, or use 'polyroute keys … --config FILE' on this machine.")
        if given is not None and self._master is not None and hmac.compare_digest(
                given.encode(), self._master):
            return MASTER
        if given is not None and self._admin_keys is not None:
            actor = await self._admin_keys.authenticate(given)
            if actor is not None:
                return actor
        if self._master is None:  # no master key: only admin keys made with --config
            raise PermissionDenied(
                "The admin API is off for anything but admin keys: set auth.master_key (e.g. "
                "${POLYROUTE_MASTER_KEY}) in the config, or create an admin key on this "
                "machine with 'polyroute admin-keys create --role admin --config FILE'.")
        raise AuthenticationFailed("The admin API needs the master key or an admin key.")

    def _authorized(self, handler: Handler, method: str, what: str,
                    team_route: bool) -> Handler:
        write = method != "GET"
        action = f"{method} {what}"

        async def run(request: web.Request) -> web.Response:
            actor = await self._actor(request)
            request[_ACTOR] = actor  # set once, read by the handlers
            try:
                actor.check(write, team_route, what)
                response = await handler(request)
            except GatewayError as exc:
                if write or isinstance(exc, PermissionDenied):
                    await self._log(request, actor, action, f"error {exc.status}",
                                    {"error": exc.message})
                raise
            if write:
                await self._log(request, actor, action, "ok", None)
            return response

        return run

    async def _log(self, request: web.Request, actor: Actor, action: str, outcome: str,
                   detail: dict[str, Any] | None) -> None:
        if self._audit is None:
            return
        target = request.match_info.get("id") or request.get(_TARGET)
        body = request.get(_BODY)
        full = {**({"body": body} if body is not None else {}), **(detail or {})}
        await self._audit.record(actor.id, action, target, outcome, full)

    # -- keys -----------------------------------------------------------------------------
    def _own_key(self, request: web.Request, what: str) -> str:
        """The key in the path, after checking a team admin may touch it."""
        key_id = request.match_info["id"]
        actor = _actor_of(request)
        if actor.team_scoped:
            actor.check_team(self._service.key(key_id).team, what)
        return key_id

    async def list_keys(self, request: web.Request) -> web.Response:
        actor = _actor_of(request)
        team = request.query.get("team")
        if team is not None:
            actor.check_team(team, "list the keys")
        found = self._service.directory.keys(team)
        if actor.team_scoped:
            found = [k for k in found if k.team in actor.teams]
        return _json({"data": found})

    async def create_key(self, request: web.Request) -> web.Response:
        spec = await _body(request, KeyIn)
        _actor_of(request).check_team(spec.team, "create keys")
        made = await self._service.create_key(spec)
        request[_TARGET] = made.id
        return _json(made, status=201)

    async def get_key(self, request: web.Request) -> web.Response:
        return _json(self._service.key(self._own_key(request, "read the keys")))

    async def patch_key(self, request: web.Request) -> web.Response:
        key_id = self._own_key(request, "change the keys")
        patch = await _body(request, dict)
        if "team" in patch:
            _actor_of(request).check_team(patch["team"], "move keys into the keys")
        return _json(await self._service.update_key(key_id, patch))

    async def revoke_key(self, request: web.Request) -> web.Response:
        return _json(await self._service.revoke_key(self._own_key(request, "revoke the keys")))

    async def key_budget(self, request: web.Request) -> web.Response:
        key_id = self._own_key(request, "read the budgets of the keys")
        return _json(await self._service.budget(f"k:{key_id}"))

    # -- teams ----------------------------------------------------------------------------
    async def list_teams(self, request: web.Request) -> web.Response:
        actor = _actor_of(request)
        teams = self._service.directory.teams()
        if actor.team_scoped:
            teams = [t for t in teams if t.id in actor.teams]
        return _json({"data": teams})

    async def create_team(self, request: web.Request) -> web.Response:
        spec = await _body(request, TeamIn)
        request[_TARGET] = spec.id
        return _json(await self._service.put_team(spec), status=201)

    async def get_team(self, request: web.Request) -> web.Response:
        _actor_of(request).check_team(request.match_info["id"], "read the settings")
        return _json(self._service.team(request.match_info["id"]))

    async def patch_team(self, request: web.Request) -> web.Response:
        actor = _actor_of(request)
        actor.check_team(request.match_info["id"], "change the settings")
        patch = await _body(request, dict)
        if actor.team_scoped and "org" in patch:
            raise PermissionDenied("The team_admin role may not move a team to another "
                                   "organisation.", code="role_forbidden")
        return _json(await self._service.update_team(request.match_info["id"], patch))

    async def delete_team(self, request: web.Request) -> web.Response:
        revoked = await self._service.delete_team(request.match_info["id"])
        return _json({"deleted": request.match_info["id"], "revoked_keys": revoked})

    async def team_budget(self, request: web.Request) -> web.Response:
        _actor_of(request).check_team(request.match_info["id"], "read the budget")
        return _json(await self._service.budget(f"t:{request.match_info['id']}"))

    # -- organisations --------------------------------------------------------------------
    async def list_orgs(self, request: web.Request) -> web.Response:
        return _json({"data": self._service.directory.orgs()})

    async def create_org(self, request: web.Request) -> web.Response:
        spec = await _body(request, OrgIn)
        request[_TARGET] = spec.id
        return _json(await self._service.put_org(spec), status=201)

    async def get_org(self, request: web.Request) -> web.Response:
        return _json(self._service.org(request.match_info["id"]))

    async def patch_org(self, request: web.Request) -> web.Response:
        patch = await _body(request, dict)
        return _json(await self._service.update_org(request.match_info["id"], patch))

    async def delete_org(self, request: web.Request) -> web.Response:
        teams, revoked = await self._service.delete_org(request.match_info["id"])
        return _json({"deleted": request.match_info["id"], "deleted_teams": teams,
                      "revoked_keys": revoked})

    async def org_budget(self, request: web.Request) -> web.Response:
        return _json(await self._service.budget(f"o:{request.match_info['id']}"))

    # -- usage, ledger, status ------------------------------------------------------------
    async def usage(self, request: web.Request) -> web.Response:
        q = request.query
        by = [b.strip() for b in q.get("by", "day").split(",") if b.strip()]
        try:
            since = parse_time(q.get("since", "30d"))
            until = parse_time(q["until"]) if "until" in q else time.time() + 1
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="since") from None
        filters = {name: q[name] for name in ("key", "team", "org", "vendor", "model")
                   if name in q}
        actor = _actor_of(request)
        if actor.team_scoped:
            if "team" not in filters and len(actor.teams) == 1:
                filters["team"] = next(iter(actor.teams))
            actor.check_team(filters.get("team"), "read the usage")
        rows = await self._service.usage(by, since, until, filters)
        return _json({"by": by, "since": since, "until": until, "data": rows})

    async def independence(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            since = parse_time(q.get("since", "30d"))
            until = parse_time(q["until"]) if "until" in q else time.time() + 1
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="since") from None
        return _json(await self._service.independence(since, until))

    async def ledger(self, request: web.Request) -> web.Response:
        rows = await self._service.ledger(request.match_info["request_id"])
        actor = _actor_of(request)
        for row in rows:  # a team admin reads its teams' requests only
            actor.check_team(row.get("team"), "read the requests")
        return _json({"data": rows})

    async def status(self, request: web.Request) -> web.Response:
        return _json(await self._status())

    async def whoami(self, request: web.Request) -> web.Response:
        """The caller's role and teams: the console shows and offers what they allow."""
        actor = _actor_of(request)
        return _json({"actor": actor.id, "role": actor.role, "teams": sorted(actor.teams)})

    async def openapi(self, request: web.Request) -> web.Response:
        return _json(openapi())

    # -- admin keys and the audit log -----------------------------------------------------
    def _keys(self) -> AdminKeys:
        if self._admin_keys is None:
            raise PermissionDenied("Admin keys need the gateway's database.")
        return self._admin_keys

    async def list_admin_keys(self, request: web.Request) -> web.Response:
        return _json({"data": await self._keys().list()})

    async def create_admin_key(self, request: web.Request) -> web.Response:
        spec = await _body(request, AdminKeyIn)
        made = await self._keys().create(spec)
        request[_TARGET] = made.id
        return _json(made, status=201)

    async def revoke_admin_key(self, request: web.Request) -> web.Response:
        return _json(await self._keys().revoke(request.match_info["id"]))

    def _log_or_refuse(self) -> AuditLog:
        if self._audit is None:
            raise PermissionDenied("The audit log needs the gateway's database.")
        return self._audit

    async def audit_entries(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            since = parse_time(q.get("since", "30d"))
            until = parse_time(q["until"]) if "until" in q else time.time() + 1
            limit = min(int(q.get("limit", "1000")), 10_000)
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="since") from None
        filters = {n: q[n] for n in ("actor", "action", "target", "outcome") if n in q}
        entries = await self._log_or_refuse().query(since, until, filters, limit)
        return _json({"data": entries})

    async def audit_verify(self, request: web.Request) -> web.Response:
        return _json(await self._log_or_refuse().verify())


def actor_of(request: web.Request) -> Actor:
    """Who makes this admin call (set by the key check before any handler runs)."""
    return request[_ACTOR]


_actor_of = actor_of


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encode(value), status=status, content_type="application/json")


async def _body(request: web.Request, type_: type[Any]) -> Any:
    raw = await request.content.read(_MAX_BODY + 1)
    if len(raw) > _MAX_BODY:
        raise InvalidRequest("The body is too large.", status=413)
    try:
        value = msgspec.json.decode(raw or b"{}", type=type_)
        request[_BODY] = msgspec.to_builtins(value)  # for the audit log: no key material
        return value
    except msgspec.ValidationError as exc:
        raise invalid_request(str(exc)) from None  # a 400 whose ``param`` names the field
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"Invalid body: {exc}") from None
