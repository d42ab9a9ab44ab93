"""The admin API's OpenAPI 3.1 document, built from the same msgspec types the handlers
decode and encode (so it cannot drift from them). ``polyroute admin openapi`` prints it;
docs/admin-openapi.json is that output."""

from __future__ import annotations

from typing import Any

import msgspec

from polyroute import __version__
from polyroute.policy.admin import BudgetStatus, IndependenceView, UsageRow
from polyroute.policy.audit import AuditView, VerifyResult
from polyroute.policy.entities import (
    KeyCreated,
    KeyIn,
    KeyView,
    OrgIn,
    OrgView,
    TeamIn,
    TeamView,
)
from polyroute.policy.roles import AdminKeyCreated, AdminKeyIn, AdminKeyView
from polyroute.surface.console.openapi import CONSOLE_TYPES, console_paths


class ErrorBody(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class Error(msgspec.Struct):
    error: ErrorBody


_TYPES = (KeyIn, KeyView, KeyCreated, TeamIn, TeamView, OrgIn, OrgView, BudgetStatus, UsageRow,
          IndependenceView, AdminKeyIn, AdminKeyView, AdminKeyCreated, AuditView,
          VerifyResult, Error)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(name: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"data": {"type": "array", "items": _ref(name)}}}


def _op(summary: str, ok: dict[str, Any] | None, body: str | None = None, status: int = 200,
        params: tuple[str, ...] = ()) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {
        str(status): {"description": "OK", "content": {"application/json": {"schema": ok}}}
        if ok is not None else {"description": "OK"},
        "401": {"description": "no or wrong master key or admin key",
                "content": {"application/json": {"schema": _ref("Error")}}},
        "403": {"description": "the admin key's role may not do this (role_forbidden)",
                "content": {"application/json": {"schema": _ref("Error")}}},
        "404": {"description": "no such object",
                "content": {"application/json": {"schema": _ref("Error")}}},
    }}
    if body is not None:
        schema = _ref(body) if body != "patch" else {
            "type": "object", "description": "Any fields of the object's create body; the "
            "ones given replace the current values (null clears a limit)."}
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": schema}}}
    if params:
        op["parameters"] = [_QUERY[p] for p in params]
    return op


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


def _scope_paths(path: str, noun: str, plural: str, struct: str,
                 delete: str) -> dict[str, Any]:
    """The list, create, read, change, delete and budget paths of teams and organisations."""
    article = "an" if noun[0] in "aeiou" else "a"
    return {
        f"/admin/{path}": {
            "get": _op(f"List {plural}", _list(f"{struct}View")),
            "post": _op(f"Create (or replace) {article} {noun}", _ref(f"{struct}View"),
                        f"{struct}In", 201),
        },
        f"/admin/{path}/{{id}}": {
            "parameters": [_ID],
            "get": _op(f"One {noun}", _ref(f"{struct}View")),
            "patch": _op(f"Change {article} {noun}", _ref(f"{struct}View"), "patch"),
            "delete": _op(delete, None),
        },
        f"/admin/{path}/{{id}}/budget": {"parameters": [_ID], "get": _op(
            f"{article.capitalize()} {noun}'s spend and limits", _ref("BudgetStatus"))},
    }
_QUERY: dict[str, dict[str, Any]] = {
    "team": {"name": "team", "in": "query", "schema": {"type": "string"},
             "description": "only this team's keys"},
    "by": {"name": "by", "in": "query", "schema": {"type": "string", "default": "day"},
           "description": "comma-separated: key, team, org, vendor, model, upstream_model, "
                          "deployment, day, status"},
    "since": {"name": "since", "in": "query", "schema": {"type": "string", "default": "30d"},
              "description": "7d, 24h, 30m, an ISO date or datetime (UTC), or Unix seconds"},
    "until": {"name": "until", "in": "query", "schema": {"type": "string"},
              "description": "same forms as since; default now"},
    **{f: {"name": f, "in": "query", "schema": {"type": "string"},
           "description": f"only this {f}"} for f in ("key", "org", "vendor", "model",
                                                       "actor", "action", "target",
                                                       "outcome")},
    "limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 1000},
              "description": "at most this many entries (newest first; 10000 at most)"},
}


def openapi() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        (*_TYPES, *CONSOLE_TYPES), ref_template="#/components/schemas/{name}")
    paths: dict[str, Any] = {
        "/admin/keys": {
            "get": _op("List keys (never their secret part)", _list("KeyView"),
                       params=("team",)),
            "post": _op("Create a key: the response holds the key, shown this once",
                        _ref("KeyCreated"), "KeyIn", 201),
        },
        "/admin/keys/{id}": {
            "parameters": [_ID],
            "get": _op("One key", _ref("KeyView")),
            "patch": _op("Change a key's limits, team, name or expiry", _ref("KeyView"),
                         "patch"),
            "delete": _op("Revoke a key (refused from then on; kept for the ledger)",
                          _ref("KeyView")),
        },
        "/admin/keys/{id}/budget": {"parameters": [_ID], "get": _op(
            "A key's spend today, this month and in total, its reservations and limits",
            _ref("BudgetStatus"))},
        **_scope_paths("teams", "team", "teams", "Team", "Delete a team and revoke its keys"),
        **_scope_paths("orgs", "organisation", "organisations", "Org",
                       "Delete an organisation, its teams, and revoke their keys"),
        "/admin/usage": {"get": _op(
            "Requests, tokens and spend from the ledger, grouped", {
                "type": "object", "properties": {
                    "by": {"type": "array", "items": {"type": "string"}},
                    "since": {"type": "number"}, "until": {"type": "number"},
                    "data": {"type": "array", "items": _ref("UsageRow")}}},
            params=("by", "since", "until", "key", "team", "org", "vendor", "model"))},
        "/admin/ledger/{request_id}": {
            "parameters": [{"name": "request_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "get": _op("The ledger records of one request, by the gateway's x-request-id or "
                       "the id its client gave", {"type": "object"})},
        "/admin/independence": {"get": _op(
            "Dependence on each vendor, cloud and region (shares, HHI, traffic that cannot "
            "move) and what losing each would take down, from the ledger",
            _ref("IndependenceView"), params=("since", "until"))},
        "/admin/whoami": {"get": _op(
            "The calling key's role (admin, team_admin, auditor) and, for a team admin, its "
            "teams", {"type": "object", "properties": {
                "actor": {"type": "string"}, "role": {"type": "string"},
                "teams": {"type": "array", "items": {"type": "string"}}}})},
        "/admin/status": {"get": _op(
            "Mode (open or keys), key count, ledger backlog, shared state health, vendor-share "
            "caps (shares, steered, unmet per scope)",
            {"type": "object"})},
        **console_paths(_op, _QUERY, _ref),
        "/admin/admin-keys": {
            "get": _op("List admin keys (never their secret part)", _list("AdminKeyView")),
            "post": _op("Create an admin key with a role: the response holds the key, shown "
                        "this once", _ref("AdminKeyCreated"), "AdminKeyIn", 201),
        },
        "/admin/admin-keys/{id}": {"parameters": [_ID], "delete": _op(
            "Revoke an admin key", _ref("AdminKeyView"))},
        "/admin/audit": {"get": _op(
            "Audit log entries (admin actions, policy refusals), newest first",
            _list("AuditView"),
            params=("since", "until", "actor", "action", "target", "outcome", "limit"))},
        "/admin/audit/verify": {"get": _op(
            "Recompute the audit log's hash chain: ok, or the first entry removed or edited",
            _ref("VerifyResult"))},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "polyroute admin API", "version": __version__,
                 "description": "Keys, teams, organisations, budgets, usage, admin keys and "
                                "the audit log. Every route needs the master key or an admin "
                                "key as 'Authorization: Bearer <key>'; an admin key's role "
                                "(admin, team_admin, auditor) limits what it may do."},
        "components": {"schemas": components, "securitySchemes": {
            "master": {"type": "http", "scheme": "bearer"}}},
        "security": [{"master": []}],
        "paths": paths,
    }
