"""``polyroute serve --workers N``: N processes serve one port; a parent supervises them.

How the port is shared: the parent binds it first (so a port in use, or port 0, is settled
once, before any worker exists) and keeps that socket bound but not listening; each worker
then binds the same address with ``SO_REUSEPORT`` and the kernel spreads new connections over
the workers' listening sockets by a hash of the connection. Measured against the pre-fork
alternative (one listening socket inherited by every worker): with uvloop the worker that
wakes first accepts everything queued, so a client pool opening 16 connections at once put
15 or all 16 of them on one worker in 4 of 6 bursts; SO_REUSEPORT spread them (5–11 at the
worst). Under saturating load both balance CPU alike (docs/operations.md has the figures).
Its cost: connections queued on a worker that dies are reset; clients retry.

Workers are forked, not re-executed: the config was loaded and checked once, and the parent
has started no thread and no event loop when it forks. Each worker builds its own app
(transport, database connections, spool segments, limiter) after the fork.

The parent restarts a worker that dies (at once if it lived a while, with a growing pause if
it keeps dying at start), forwards SIGHUP to every worker (each reloads its config file:
polyroute/reloading.py), and on SIGTERM or SIGINT sends every worker one SIGTERM:
each stops accepting, lets requests in flight finish within ``server.shutdown_grace_s`` and
flushes its ledger spool. A worker killed with -9 loses no ledger record either: its spool
segments survive it, and the worker started in its place adopts them.

What stays exact: without Redis, limits, budgets and reservations live in each process, so N
workers would allow N times each limit. So more than one worker needs ``state.redis_url``
whenever client keys exist: refused at start when ``auth.master_key`` is set, and a worker
that finds keys in the key store (created by the CLI while the gateway ran in open mode)
stops the whole gateway with the same message (exit code 2). Circuits without Redis are per
worker, as they are per replica (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from polyroute.config import GatewayConfig

log = logging.getLogger("polyroute.workers")

KEYS_NEED_REDIS = 78
"""A worker's exit code when client keys exist without Redis (EX_CONFIG): stop, don't restart."""
_SIGNALS = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_STOPPING = (signal.SIGTERM, signal.SIGINT)
_KILL_MARGIN_S = 10.0
"""Beyond twice the grace (aiohttp waits up to the grace for a handler, then as long again
for it to unwind after cancelling it), this long for the ledger flush before SIGKILL."""
_STEADY_S = 10.0
"""A worker that lived this long is restarted at once; one that died sooner waits longer."""
_MAX_PAUSE_S = 30.0
_WATCH_S = 1.0
WORKER_HEADER = "x-polyroute-worker"


def refusal(config: GatewayConfig, workers: int) -> str | None:
    """Why ``workers`` processes cannot serve ``config`` exactly, or None."""
    if workers > 1 and config.state.redis_url is None and config.auth.master_key:
        return keys_need_redis(workers, "auth.master_key is set")
    return None


def keys_need_redis(workers: int, because: str) -> str:
    return (f"polyroute: --workers {workers} needs state.redis_url when client keys are in use "
            f"({because}): each worker would enforce limits and budgets on its own, "
            f"{workers} times each limit. Set state.redis_url (e.g. redis://127.0.0.1:6379/0), "
            "or serve with --workers 1.")


@dataclass(slots=True)
class _Worker:
    index: int
    pid: int
    started: float
    pause_s: float = 0.0
    """The pause before the next restart, grown while the worker dies young."""


@dataclass(frozen=True, slots=True)
class WorkerRuntime:
    """What ``cli`` gives each worker: how to build its event loop and tune its collector."""

    new_loop: Callable[[], asyncio.AbstractEventLoop]
    tune_gc: Callable[[], None]
    watch_config_s: float | None = None
    """Reload the config file when it changes, looked at this often (None: on SIGHUP only)."""


def serve_workers(config: GatewayConfig, workers: int, runtime: WorkerRuntime) -> int:
    """Bind, fork ``workers`` workers, supervise them until a stop signal; the exit code."""
    refused = refusal(config, workers)
    if refused:
        print(refused, file=sys.stderr, flush=True)
        return 2
    server = config.server
    try:
        holder = _bind(server.host, server.port)
    except OSError as exc:
        print(f"polyroute: cannot listen on {server.host}:{server.port}: "
              f"{exc.strerror or exc}", file=sys.stderr, flush=True)
        return 1
    port = holder.getsockname()[1]
    config = _with_port(config, port)
    _prepare_database(config)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    supervisor = _Supervisor(config, workers, runtime, holder, previous)
    try:
        for index in range(1, workers + 1):
            supervisor.start(index)
        print(f"polyroute listening on http://{server.host}:{port}/v1 with {workers} worker "
              f"processes (pids {', '.join(str(w.pid) for w in supervisor.workers.values())})",
              flush=True)
        return supervisor.run()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        holder.close()


class _Supervisor:
    def __init__(self, config: GatewayConfig, count: int, runtime: WorkerRuntime,
                 holder: socket.socket, mask: set[int | signal.Signals]) -> None:
        self._config = config
        self._count = count
        self._runtime = runtime
        self._holder = holder
        self._mask = mask
        self.workers: dict[int, _Worker] = {}
        """By pid."""
        self._restarts: dict[int, float] = {}
        """Worker index → when to start it again."""
        self._pauses: dict[int, float] = {}
        self._reloaded = False
        """A SIGHUP was forwarded: a worker started from now on reloads the file at start
        (the parent never loads config after forking: it stays free of threads)."""

    def start(self, index: int) -> int:
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the parent's code
            code = 1
            try:
                os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the parent only, which relays
                signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
                code = _run_worker(self._config, index, self._holder, os.getppid(),
                                   self._count, self._runtime, self._reloaded)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.workers[pid] = _Worker(index, pid, time.monotonic(),
                                    self._pauses.get(index, 0.0))
        return pid

    def run(self) -> int:
        """Until a stop signal (or a worker that must not be restarted): restart the dead."""
        while True:
            info = signal.sigtimedwait(_SIGNALS, self._next_wait())
            if info is not None and info.si_signo == signal.SIGHUP:
                log.warning("polyroute: SIGHUP: %d workers reload their config",
                            len(self.workers))
                for pid in list(self.workers):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGHUP)
                self._reloaded = True
                continue
            if info is not None and info.si_signo in _STOPPING:
                log.warning("polyroute: %s: stopping %d workers (requests in flight get %g s)",
                            signal.Signals(info.si_signo).name, len(self.workers),
                            self._config.server.shutdown_grace_s)
                return self._stop(0)
            for worker, code in self._reap():
                if code == KEYS_NEED_REDIS:
                    print(keys_need_redis(self._count, "the key store holds client keys"),
                          file=sys.stderr, flush=True)
                    return self._stop(2)
                self._schedule_restart(worker, code)
            now = time.monotonic()
            for index, due in list(self._restarts.items()):
                if due <= now:
                    del self._restarts[index]
                    log.warning("polyroute: worker %d restarted (pid %d)", index,
                                self.start(index))

    def _next_wait(self) -> float:
        if not self._restarts:
            return 5.0
        return max(0.01, min(self._restarts.values()) - time.monotonic())

    def _reap(self) -> list[tuple[_Worker, int]]:
        dead = []
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            worker = self.workers.pop(pid, None)
            if worker is not None:
                dead.append((worker, os.waitstatus_to_exitcode(status)))
        return dead

    def _schedule_restart(self, worker: _Worker, code: int) -> None:
        lived = time.monotonic() - worker.started
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        pause = 0.0 if lived >= _STEADY_S else min(_MAX_PAUSE_S, max(0.5, worker.pause_s * 2))
        self._pauses[worker.index] = pause
        self._restarts[worker.index] = time.monotonic() + pause
        log.error("polyroute: worker %d (pid %d) died after %.1f s (%s); restarting%s",
                  worker.index, worker.pid, lived, how,
                  f" in {pause:g} s" if pause else "")

    def _stop(self, code: int) -> int:
        """SIGTERM every worker, wait for them to drain; SIGKILL whoever outlasts the grace."""
        self._restarts.clear()
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 2 * self._config.server.shutdown_grace_s + _KILL_MARGIN_S
        while self.workers:
            self._reap()
            left = deadline - time.monotonic()
            if not self.workers:
                break
            if left <= 0:
                for pid in self.workers:  # their spools survive: the next start adopts them
                    log.error("polyroute: worker pid %d did not stop in time: SIGKILL", pid)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 5.0
                code = code or 1
                continue
            info = signal.sigtimedwait(_SIGNALS, min(left, 1.0))
            if info is not None and info.si_signo == signal.SIGINT:  # asked twice: at once
                deadline = time.monotonic()
        return code


def _run_worker(config: GatewayConfig, index: int, holder: socket.socket, parent: int,
                count: int, runtime: WorkerRuntime, reload_now: bool = False) -> int:
    """One worker: its own app, on its own SO_REUSEPORT socket; the exit code."""
    from polyroute.app import build_app, watch_connections
    from polyroute.surface.listener import ConnectionGate, connection_cap, serve

    holder.close()  # the parent's placeholder: the worker listens on a socket of its own
    server = config.server
    app = build_app(config)
    gate = ConnectionGate(connection_cap(server.max_connections), server.max_connections_per_ip)
    watch_connections(app, gate)
    header = str(os.getpid())

    async def name_worker(request: web.Request, response: web.StreamResponse) -> None:
        response.headers[WORKER_HEADER] = header

    app.on_response_prepare.append(name_worker)
    from polyroute.reloading import reload_on_sighup

    reloader = reload_on_sighup(app, None if config.source == "environment" else config.source,
                                runtime.watch_config_s)
    if reload_now and reloader is not None:
        reloader.reload()  # a worker restarted after a SIGHUP: the file as it is now
    verdict: list[int] = []
    app.cleanup_ctx.append(_watch(parent, config, count, verdict))
    runtime.tune_gc()
    loop = runtime.new_loop()
    log.info("worker %d (pid %d) serving", index, os.getpid())
    serve(app, server, loop, gate, reuse_port=True)
    return verdict[0] if verdict else 0


def _watch(parent: int, config: GatewayConfig, count: int, verdict: list[int],
           ) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    """A background check, once a second: stop if the parent is gone (no orphan keeps the
    port), or if client keys appeared while limits are per process (see the module doc)."""

    @contextlib.asynccontextmanager
    async def watching(app: web.Application) -> AsyncIterator[None]:
        from polyroute.app import APP_KEY

        stack = app[APP_KEY].policy_stack
        needs_redis = config.state.redis_url is None

        async def watch() -> None:
            while True:
                await asyncio.sleep(_WATCH_S)
                if os.getppid() != parent:
                    log.error("worker: the supervising process is gone; stopping")
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
                directory = None if stack is None else stack.directory
                if needs_redis and directory is not None and directory.loaded and (
                        directory.any_keys):
                    log.error(keys_need_redis(count, "the key store holds client keys"))
                    verdict.append(KEYS_NEED_REDIS)
                    os.kill(os.getpid(), signal.SIGTERM)
                    return

        task = asyncio.create_task(watch(), name="polyroute-worker-watch")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return watching


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to the address with SO_REUSEPORT, not listening: it settles the port
    (port 0 becomes a real one) and keeps any process without SO_REUSEPORT off it. A first
    bind without SO_REUSEPORT fails if anything holds the port, so a second gateway (even
    one with workers, whose sockets would accept a newcomer) is refused, not joined."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
        address = probe.getsockname()
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _with_port(config: GatewayConfig, port: int) -> GatewayConfig:
    from dataclasses import replace

    return replace(config, server=replace(config.server, port=port))


def _prepare_database(config: GatewayConfig) -> None:
    """Create or migrate the database once, before the workers race to do it. Bounded: a
    database that is down is left to each worker's usual retrying bring-up."""
    from polyroute.storage import postgres, sqlite
    from polyroute.storage.database import Database, StoreUnavailable

    storage = config.storage
    if not (storage.ledger or config.auth.master_key):
        return
    db: Database = (postgres.PostgresDatabase(storage.postgres_url, timeout_s=2.0, pool_size=1)
                    if storage.postgres_url else sqlite.SqliteDatabase(storage.sqlite_path))

    async def migrate() -> None:
        try:
            with contextlib.suppress(StoreUnavailable, TimeoutError):
                async with asyncio.timeout(5.0):
                    await db.start()
        finally:
            await db.close()

    asyncio.run(migrate())
