"""Config reload without a restart: ``SIGHUP`` (``polyroute reload`` sends it; with
``serve --workers N`` the parent forwards it to every worker), or, with ``serve
--watch-config``, whenever the file changes.

The file is loaded and validated in full first, exactly as at start-up: a bad file changes
nothing and is reported in one line (``polyroute: reload refused: config error: …``). A good
one replaces the routing — model groups, deployments, providers, strategies, their knobs,
resilience — and the guardrails (``guardrails:``) for requests that start from then on;
requests in flight finish on the route and the guardrails they were given. What is learnt
of a deployment is kept when it stays: its circuit (by upstream), its latency estimate, its
in-flight count and quota readings (by name), the keys' counters and caches, the
vendor-share caps' windows (by scope). Settings of the process itself — ``server``,
``storage``, ``state``, ``auth``, ``limits`` — need a restart: a change there is named in a
warning and not applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import replace

from aiohttp import web

from polyroute.app import APP_KEY
from polyroute.config import ConfigError, GatewayConfig, load_config
from polyroute.engine.auto import AutoRoutes
from polyroute.engine.router import Router
from polyroute.observability.logging import install_redaction

log = logging.getLogger("polyroute.reload")

_RESTART_ONLY = ("server", "storage", "state", "auth", "limits")


class Reloader:
    def __init__(self, app: web.Application, path: str) -> None:
        self._app = app
        self._path = path
        self.generation = 0
        """Reloads applied so far."""

    def reload(self) -> bool:
        """Load the file again and, if it is valid, route with it from now on."""
        parts = self._app[APP_KEY]
        try:
            fresh = load_config(self._path)
        except ConfigError as exc:
            log.error("polyroute: reload refused, nothing changed: config error: %s", exc)
            return False
        except Exception as exc:
            log.error("polyroute: reload refused, nothing changed: %s", exc)
            return False
        old = parts.config
        ignored = [s for s in _RESTART_ONLY if _section(old, s) != _section(fresh, s)]
        if ignored:
            log.warning("polyroute: reload: %s changed; that needs a restart and is not "
                        "applied", ", ".join(ignored))
        config = replace(fresh, **{s: getattr(old, s) for s in _RESTART_ONLY},
                         source=old.source)
        self.apply(config)
        self.generation += 1
        log.warning("polyroute: config reloaded from %s: %d model groups (%s)", self._path,
                    len(config.groups), ", ".join(config.groups) or "none")
        return True

    def apply(self, config: GatewayConfig) -> None:
        parts = self._app[APP_KEY]
        room = parts.gateway.router.room
        deployments = [d for g in config.groups.values() for d in g.deployments]
        # Everything fallible is built before anything is swapped: a failure changes nothing.
        caps = parts.gateway.router.caps  # the vendor-share windows carry on
        router = Router(config, auto=AutoRoutes(config), room=room, caps=caps)
        guardrails = parts.guardrails_of(config) if parts.guardrails_of is not None else None
        install_redaction(parts.config.secrets | config.secrets)  # in-flight keys stay secret
        parts.upstream.know_secrets(config.secrets)
        parts.breakers.track(d.upstream for d in deployments)
        parts.metrics.know(config.groups, (d.name for d in deployments))
        if parts.policy_stack is not None:
            parts.policy_stack.prices.adopt(config)
        if parts.catalog is not None:
            parts.catalog.use(config)
        caps.use(config)
        parts.gateway.use(router)
        if parts.tools is not None:
            parts.tools.use(config.mcp)
        if guardrails is not None:
            parts.gateway.use_guardrails(guardrails)
        if parts.policy_stack is not None:  # policies are checked against the new names
            parts.policy_stack.service.guardrails = frozenset(g.name for g in config.guardrails)
        room.forget(d.name for d in deployments)
        parts.config = config


def _section(config: GatewayConfig, name: str) -> object:
    return getattr(config, name)


def reload_on_sighup(app: web.Application, path: str | None,
                     watch_s: float | None = None) -> Reloader | None:
    """Reload ``path`` on SIGHUP once the app runs, and, with ``watch_s``, whenever the file
    changes (looked at every ``watch_s``). Nothing to reload for a config read from the
    environment: the process's environment cannot change."""
    if path is None:
        return None
    reloader = Reloader(app, path)

    async def install(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, reloader.reload)
        watching = None
        if watch_s is not None:
            watching = asyncio.create_task(_watch(path, reloader, watch_s),
                                           name="polyroute-config-watch")
        yield
        loop.remove_signal_handler(signal.SIGHUP)
        if watching is not None:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching

    app.cleanup_ctx.append(install)
    return reloader


async def _watch(path: str, reloader: Reloader, interval_s: float) -> None:
    """Polled, not inotify: it works on every filesystem (a Kubernetes ConfigMap is a
    symlink swap), and a look every second costs one stat."""
    seen = _stamp(path)
    while True:
        await asyncio.sleep(interval_s)
        now = _stamp(path)
        if now != seen and now is not None:
            seen = now
            log.warning("polyroute: %s changed: reloading", path)
            reloader.reload()  # a half-written file is refused; the finished one follows


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino
