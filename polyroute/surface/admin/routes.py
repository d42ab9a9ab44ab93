"""The admin API over HTTP: thin handlers around :class:`~.service.AdminService`. Every route
requires ``Authorization: Bearer <master key>`` (or ``x-api-key``); errors have OpenAI's
shape. Nothing here ever echoes a key back, except the one response that creates it."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from polyroute.errors import AuthenticationFailed, InvalidRequest, PermissionDenied, invalid_request
from polyroute.policy.admin import AdminService
from polyroute.policy.entities import KeyIn, OrgIn, TeamIn
from polyroute.surface.admin.openapi import openapi
from polyroute.surface.admin.timespec import parse_time
from polyroute.surface.http import credentials, guarded
from polyroute.surface.openai.handlers import encode_error

_encode = msgspec.json.Encoder().encode
_MAX_BODY = 64 * 1024
Status = Callable[[], Awaitable[dict[str, Any]]]


class AdminRoutes:
    def __init__(self, service: AdminService, master_key: str | None, status: Status) -> None:
        self._service = service
        self._master = master_key.encode() if master_key else None
        self._status = status

    def add_to(self, app: web.Application) -> None:
        s = self
        table: list[tuple[str, str, Callable[[web.Request], Awaitable[web.Response]]]] = [
            ("GET", "/admin/keys", s.list_keys), ("POST", "/admin/keys", s.create_key),
            ("GET", "/admin/keys/{id}", s.get_key), ("PATCH", "/admin/keys/{id}", s.patch_key),
            ("DELETE", "/admin/keys/{id}", s.revoke_key),
            ("GET", "/admin/keys/{id}/budget", s.key_budget),
            ("GET", "/admin/teams", s.list_teams), ("POST", "/admin/teams", s.create_team),
            ("GET", "/admin/teams/{id}", s.get_team),
            ("PATCH", "/admin/teams/{id}", s.patch_team),
            ("DELETE", "/admin/teams/{id}", s.delete_team),
            ("GET", "/admin/teams/{id}/budget", s.team_budget),
            ("GET", "/admin/orgs", s.list_orgs), ("POST", "/admin/orgs", s.create_org),
            ("GET", "/admin/orgs/{id}", s.get_org), ("PATCH", "/admin/orgs/{id}", s.patch_org),
            ("DELETE", "/admin/orgs/{id}", s.delete_org),
            ("GET", "/admin/orgs/{id}/budget", s.org_budget),
            ("GET", "/admin/usage", s.usage), ("GET", "/admin/ledger/{request_id}", s.ledger),
            ("GET", "/admin/status", s.status),
            ("GET", "/admin/independence", s.independence),
        ]
        for method, path, handler in table:
            app.router.add_route(method, path, guarded(self._authorized(handler), encode_error))
        app.router.add_get("/admin/openapi.json", self.openapi)

    def add_routes(
        self, app: web.Application,
        table: list[tuple[str, str, Callable[[web.Request], Awaitable[web.Response]]]],
    ) -> None:
        """Routes of another module (the console's reads, issue 13) behind the same check."""
        for method, path, handler in table:
            app.router.add_route(method, path, guarded(self._authorized(handler), encode_error))

    def _authorized(
        self, handler: Callable[[web.Request], Awaitable[web.Response]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def run(request: web.Request) -> web.Response:
            if self._master is None:
                raise PermissionDenied(
                    "The admin API is off: set auth.master_key (e.g. ${POLYROUTE_MASTER_KEY}) "
                    "in the config, or use 'polyroute keys … --config FILE' on this machine.")
            given = credentials(request)
            if given is None or not hmac.compare_digest(given.encode(), self._master):
                raise AuthenticationFailed("The admin API needs the master key.")
            return await handler(request)

        return run

    # -- keys -----------------------------------------------------------------------------
    async def list_keys(self, request: web.Request) -> web.Response:
        return _json({"data": self._service.directory.keys(request.query.get("team"))})

    async def create_key(self, request: web.Request) -> web.Response:
        spec = await _body(request, KeyIn)
        return _json(await self._service.create_key(spec), status=201)

    async def get_key(self, request: web.Request) -> web.Response:
        return _json(self._service.key(request.match_info["id"]))

    async def patch_key(self, request: web.Request) -> web.Response:
        patch = await _body(request, dict)
        return _json(await self._service.update_key(request.match_info["id"], patch))

    async def revoke_key(self, request: web.Request) -> web.Response:
        return _json(await self._service.revoke_key(request.match_info["id"]))

    async def key_budget(self, request: web.Request) -> web.Response:
        return _json(await self._service.budget(f"k:{request.match_info['id']}"))

    # -- teams ----------------------------------------------------------------------------
    async def list_teams(self, request: web.Request) -> web.Response:
        return _json({"data": self._service.directory.teams()})

    async def create_team(self, request: web.Request) -> web.Response:
        spec = await _body(request, TeamIn)
        return _json(await self._service.put_team(spec), status=201)

    async def get_team(self, request: web.Request) -> web.Response:
        return _json(self._service.team(request.match_info["id"]))

    async def patch_team(self, request: web.Request) -> web.Response:
        patch = await _body(request, dict)
        return _json(await self._service.update_team(request.match_info["id"], patch))

    async def delete_team(self, request: web.Request) -> web.Response:
        revoked = await self._service.delete_team(request.match_info["id"])
        return _json({"deleted": request.match_info["id"], "revoked_keys": revoked})

    async def team_budget(self, request: web.Request) -> web.Response:
        return _json(await self._service.budget(f"t:{request.match_info['id']}"))

    # -- organisations --------------------------------------------------------------------
    async def list_orgs(self, request: web.Request) -> web.Response:
        return _json({"data": self._service.directory.orgs()})

    async def create_org(self, request: web.Request) -> web.Response:
        spec = await _body(request, OrgIn)
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
        return _json({"data": await self._service.ledger(request.match_info["request_id"])})

    async def status(self, request: web.Request) -> web.Response:
        return _json(await self._status())

    async def openapi(self, request: web.Request) -> web.Response:
        return _json(openapi())


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encode(value), status=status, content_type="application/json")


async def _body(request: web.Request, type_: type[Any]) -> Any:
    raw = await request.content.read(_MAX_BODY + 1)
    if len(raw) > _MAX_BODY:
        raise InvalidRequest("The body is too large.", status=413)
    try:
        return msgspec.json.decode(raw or b"{}", type=type_)
    except msgspec.ValidationError as exc:
        raise invalid_request(str(exc)) from None  # a 400 whose ``param`` names the field
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"Invalid body: {exc}") from None
