"""Shared fixtures: a simulator upstream and a real gateway process in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

SIM_KEY = "sk-sim-upstream-secret-7f3a9c"  # must never appear in the gateway's logs


def sim_provider(sim: SimServer, **extra: Any) -> dict[str, Any]:
    return {"base_url": sim.base_url, "api_key": "${SIM_KEY}", "any_model": True, **extra}


def gateway_config(sim: SimServer, **extra: Any) -> dict[str, Any]:
    """A config whose provider 'sim' also serves 'sim/<model>[@fault]' for any model."""
    config: dict[str, Any] = {
        "providers": {"sim": sim_provider(sim)},
        "model_groups": {
            "chat": {"deployments": [{"provider": "sim", "model": "gpt-4o-mini"}]},
            "echo": {"deployments": [{"provider": "sim", "model": "echo"}]},
            "embed": {"deployments": [{"provider": "sim", "model": "text-embedding-3-small"}]},
            "failover": {"routing": "priority", "deployments": [
                {"provider": "sim", "model": "gpt-4o@unavailable", "name": "primary"},
                {"provider": "sim", "model": "gpt-4o-mini", "name": "backup", "priority": 1},
            ]},
            "all-down": {"routing": "priority", "deployments": [
                {"provider": "sim", "model": "a@unavailable", "name": "first"},
                {"provider": "sim", "model": "b@server_error", "name": "second", "priority": 1},
            ]},
            "too-long": {"routing": "priority", "deployments": [
                {"provider": "sim", "model": "gpt-4o@context_length_exceeded", "name": "small"},
                {"provider": "sim", "model": "gpt-4o-mini", "name": "other", "priority": 1},
            ]},
        },
        "storage": {"flush_interval_s": 0.05},
        "server": {"max_body_bytes": 256 * 1024, "body_timeout_s": 1.0},
    }
    config.update(extra)
    return config


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(api_key=SIM_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(sim: SimServer) -> Iterator[GatewayProcess]:
    with GatewayProcess(gateway_config(sim), env={"SIM_KEY": SIM_KEY},
                        log_level="DEBUG") as gw:
        yield gw
        assert SIM_KEY not in gw.log(), "the upstream key leaked into the gateway's log"


from tests.support.llama_server import llama_server  # noqa: E402, F401  (session fixture)
