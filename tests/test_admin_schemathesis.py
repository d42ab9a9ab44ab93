"""Schemathesis over the admin API's OpenAPI document (issue 10: zero 5xx).

Every operation in ``surface/admin/openapi.py`` gets generated requests — valid ones and ones that
violate the schema (negative testing) — sent with the master key to a real gateway on
SQLite. No answer may be a 5xx, and no request may hang."""

from __future__ import annotations

from collections.abc import Iterator

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis import GenerationMode

from polyroute.surface.admin.openapi import openapi
from tests.conftest import SIM_KEY
from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY, admin, ok
from tests.support.sim import SimServer
from tests.test_limits_budget import keyed_config

schema = schemathesis.openapi.from_dict(openapi())
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayProcess]:
    with SimServer(api_key=SIM_KEY) as sim, GatewayProcess(
            keyed_config(sim), {"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}) as gateway:
        # Some objects for the generated ids to hit now and then.
        ok(admin(gateway, "POST", "/admin/orgs", {"id": "acme"}))
        ok(admin(gateway, "POST", "/admin/teams", {"id": "web", "org": "acme"}))
        ok(admin(gateway, "POST", "/admin/keys", {"team": "web", "rpm": 10}))
        yield gateway
        assert "unexpected error serving" not in gateway.log()


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.trust_env = False  # loopback only: never a proxy from the environment
        yield s


@pytest.mark.timeout(600)
@schema.parametrize()
@hypothesis.settings(max_examples=150, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_no_admin_operation_answers_5xx(case: schemathesis.Case, gw: GatewayProcess,
                                        session: requests.Session) -> None:
    # With the master key always: without it every operation stops at the 401.
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {MASTER_KEY}"}
    response = case.call(base_url=gw.root_url, session=session, timeout=15)
    assert response.status_code < 500, (case.method, case.formatted_path, case.body,
                                        case.query, response.status_code, response.text[:500])
