"""The command line: version, and zero-config serve that says what it found without secrets."""

from __future__ import annotations

import subprocess
import sys

import openai
import pytest

from polyroute import __version__
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer

KEY = "sk-zero-config-secret-98765"


def test_version() -> None:
    result = subprocess.run([sys.executable, "-m", "polyroute", "--version"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert result.stdout.strip() == f"polyroute {__version__}"


def test_zero_config_discovers_vendors_and_serves_any_model() -> None:
    with SimServer(api_key=KEY) as sim, GatewayProcess(
        None, env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": sim.base_url,
                   # Loopback only: tests never reach a real vendor.
                   "GROQ_API_KEY": "gsk-unused-123456", "GROQ_BASE_URL": sim.base_url}
    ) as gw:
        log = gw.log()
        assert "vendor 'openai'" in log and sim.base_url in log
        assert "vendor 'groq'" in log and "api.groq.com" not in log
        assert KEY not in log
        client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert reply.model == "gpt-4o-mini" and reply.choices[0].message.content
        ids = {m.id for m in client.models.list()}
        assert "openai/gpt-4o-mini" in ids and "openai/text-embedding-3-small" in ids
        with pytest.raises(openai.NotFoundError) as info:
            client.chat.completions.create(model="mistral/large",
                                           messages=[{"role": "user", "content": "hi"}])
        assert "mistral" in info.value.message and "openai" in info.value.message
        assert KEY not in gw.log()


def test_zero_config_without_vendors_says_how_to_fix() -> None:
    with GatewayProcess(None) as gw:
        assert "no vendor found" in gw.log()
        status, _ = gw.get("/readyz")
        assert status == 503
