"""A second language: the official `openai` and `@anthropic-ai/sdk` npm packages as clients of
a running gateway (tests/js; `scripts/test` installs them with `npm ci`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from polyroute.sim.settings import DEFAULT_TEXT
from tests.support.gateway import GatewayProcess

JS = Path(__file__).parent / "js"


def test_official_js_sdks(gateway: GatewayProcess) -> None:
    assert (JS / "node_modules" / "openai").exists(), "run: npm ci --prefix tests/js"
    result = subprocess.run(["node", str(JS / "clients.mjs"), gateway.root_url, "chat"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["chat"] == DEFAULT_TEXT and got["chatStream"] == DEFAULT_TEXT
    assert got["chatUsage"] > 0
    assert got["tool"] == "get_weather"
    assert got["messages"] == DEFAULT_TEXT and got["messagesStop"] == "end_turn"
    assert got["messagesStream"] == DEFAULT_TEXT
    assert got["notFound"] == "404 model_not_found"
