"""A gateway pays in memory only for what its config uses (issue 12 item 6): redis-py, numpy
and botocore are ~17 MB of every worker's private memory together, so a gateway on embedded
defaults must not import them. Checked in a fresh interpreter, after the CLI's parser is built,
the app is built and started, and one request has gone through it: a top-level import of any
of them anywhere on that path fails this test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.sim import SimServer

KEY = "sk-lazy-imports-secret-4321"
HEAVY = ("redis", "numpy", "botocore")

_SCRIPT = textwrap.dedent("""
    import asyncio, json, sys

    import aiohttp
    from aiohttp import web

    from polyroute.app import build_app
    from polyroute.cli import _parser
    from polyroute.config import load_config

    async def main() -> None:
        _parser()  # what 'polyroute serve' builds first
        runner = web.AppRunner(build_app(load_config(None)))
        await runner.setup()  # the app's startup hooks run here
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                data=BODY, headers={"content-type": "application/json"},
            ) as response:
                status = response.status
        await runner.cleanup()
        print(json.dumps({"status": status,
                          "modules": sorted({m.split(".")[0] for m in sys.modules})}))

    asyncio.run(main())
""")


def _run(tmp_path: Path, sim: SimServer, body: str) -> dict[str, object]:
    code = _SCRIPT.replace("BODY", repr(body))
    env = {k: v for k, v in os.environ.items()
           if not k.endswith(("_API_KEY", "_BASE_URL")) and not k.startswith("POLYROUTE_")}
    env.update({"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": sim.base_url,
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(Path(__file__).parent.parent), env.get("PYTHONPATH")) if p)})
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def test_a_gateway_on_embedded_defaults_imports_no_redis_numpy_or_botocore(
        tmp_path: Path) -> None:
    with SimServer(api_key=KEY) as sim:
        found = _run(tmp_path, sim, json.dumps(
            {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
    assert found["status"] == 200  # the request really went through the gateway
    modules = found["modules"]
    assert isinstance(modules, list)
    assert "aiohttp" in modules  # the probe sees what was imported
    assert [m for m in HEAVY if m in modules] == []


def test_a_deeply_nested_body_still_gets_its_depth_checked(tmp_path: Path) -> None:
    # numpy arrives with the first body that needs the scan, and the scan still refuses
    deep = '{"model": "openai/gpt-4o-mini", "messages": [], "x": ' + "[" * 150 + "]" * 150 + "}"
    with SimServer(api_key=KEY) as sim:
        found = _run(tmp_path, sim, deep)
    assert found["status"] == 400
    modules = found["modules"]
    assert isinstance(modules, list)
    assert "numpy" in modules
