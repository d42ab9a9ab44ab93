"""The /_sim control API: fault rules and statistics for tests and drills."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from polyroute.sim import errors
from polyroute.sim.faults import FaultSpecError
from polyroute.sim.settings import FaultRule
from polyroute.sim.state import get_state

_ENCODER = msgspec.json.Encoder()


class RulesPayload(msgspec.Struct, forbid_unknown_fields=True):
    rules: list[FaultRule]


_RULES_DECODER = msgspec.json.Decoder(RulesPayload)


def _json(value: Any) -> web.Response:
    return web.Response(body=_ENCODER.encode(value), content_type="application/json")


def _rules_response(request: web.Request) -> web.Response:
    return _json({"rules": get_state(request).rules.snapshot()})


async def get_faults(request: web.Request) -> web.Response:
    return _rules_response(request)


async def put_faults(request: web.Request) -> web.Response:
    try:
        payload = _RULES_DECODER.decode(await request.read())
        get_state(request).rules.replace(payload.rules)
    except (msgspec.DecodeError, FaultSpecError) as exc:
        raise errors.ApiError(400, f"Invalid fault rules: {exc}", param="rules") from None
    return _rules_response(request)


async def delete_faults(request: web.Request) -> web.Response:
    get_state(request).rules.clear()
    return _rules_response(request)


async def get_stats(request: web.Request) -> web.Response:
    return _json(get_state(request).stats.snapshot())


async def reset_stats(request: web.Request) -> web.Response:
    get_state(request).stats.reset()
    return _json({"ok": True})


async def health(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


def add_control_routes(app: web.Application) -> None:
    app.router.add_get("/_sim/faults", get_faults)
    app.router.add_put("/_sim/faults", put_faults)
    app.router.add_delete("/_sim/faults", delete_faults)
    app.router.add_get("/_sim/stats", get_stats)
    app.router.add_post("/_sim/reset", reset_stats)
    app.router.add_get("/_sim/health", health)
