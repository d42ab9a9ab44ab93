"""Run the provider simulator in a background thread for sync and async tests.

    with SimServer(text="hi") as sim:
        client = OpenAI(base_url=sim.base_url, api_key="x")
        sim.set_rules([{"fault": "rate_limit", "times": 1}])
        ...
        assert sim.stats()["faults"] == {"rate_limit": 1}

The simulator gets its own event loop, so a test's loop (or no loop at all) never
has to drive it. Control calls use plain urllib against 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import msgspec

from polyroute.sim import FaultRule, RunningSim, SimSettings, start_sim

START_TIMEOUT_S = 10.0
CONTROL_TIMEOUT_S = 10.0

# Tests must reach the simulator directly even when the environment sets a proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SimServer:
    def __init__(self, settings: SimSettings | None = None, **overrides: Any) -> None:
        """`overrides` are SimSettings fields; rules may be FaultRule objects or plain dicts."""
        # Port 0 unless asked otherwise: every server gets a free port, so tests can
        # run side by side.
        fields: dict[str, Any] = msgspec.to_builtins(settings or SimSettings())
        fields["port"] = 0
        fields.update(msgspec.to_builtins(overrides))
        self.settings = msgspec.convert(fields, SimSettings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running: RunningSim | None = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> SimServer:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._running = loop.run_until_complete(start_sim(self.settings))
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="polyroute-sim", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT_S):
            raise RuntimeError("simulator did not start in time")
        if failure:
            self._thread.join(START_TIMEOUT_S)
            self._thread = None
            raise failure[0]
        return self

    def close(self) -> None:
        loop, thread, running = self._loop, self._thread, self._running
        if loop is None or thread is None:
            return
        if running is not None:
            future = asyncio.run_coroutine_threadsafe(running.close(), loop)
            future.result(timeout=CONTROL_TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CONTROL_TIMEOUT_S)
        self._loop = self._thread = self._running = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- addresses -----------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._running is None:
            raise RuntimeError("simulator is not running")
        return self._running.port

    @property
    def root_url(self) -> str:
        if self._running is None:
            raise RuntimeError("simulator is not running")
        return self._running.root_url

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    # -- control API ---------------------------------------------------------------
    def set_rules(self, rules: Sequence[Mapping[str, Any] | FaultRule]) -> list[dict[str, Any]]:
        """Replace the server-side fault rules; returns the rules as the server holds them."""
        payload = [msgspec.to_builtins(rule) for rule in rules]
        result = self._control("PUT", "/_sim/faults", {"rules": payload})
        return list(result["rules"])

    def clear_rules(self) -> None:
        self._control("DELETE", "/_sim/faults")

    def rules(self) -> list[dict[str, Any]]:
        return list(self._control("GET", "/_sim/faults")["rules"])

    def stats(self) -> dict[str, Any]:
        return dict(self._control("GET", "/_sim/stats"))

    def reset(self) -> None:
        self._control("POST", "/_sim/reset")

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.root_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with _OPENER.open(request, timeout=CONTROL_TIMEOUT_S) as response:
            return json.loads(response.read())


def serve_sim(settings: SimSettings | None = None, **overrides: Any) -> Iterator[SimServer]:
    """For fixtures: `@pytest.fixture def sim(): yield from serve_sim(text="hi")`."""
    with SimServer(settings, **overrides) as server:
        yield server
