"""The command line: version, and zero-config serve that says what it found without secrets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

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
        with pytest.raises(openai.NotFoundError) as info:  # a bare model id: name the fix
            client.chat.completions.create(model="gpt-4o-mini",
                                           messages=[{"role": "user", "content": "hi"}])
        assert info.value.body["message"] == (  # type: ignore[index]
            "The model 'gpt-4o-mini' does not exist on this gateway. It serves "
            "'<vendor>/<model id>' for the vendors groq, openai: did you mean "
            "'groq/gpt-4o-mini' or 'openai/gpt-4o-mini'?")
        assert KEY not in gw.log()


def test_zero_config_without_vendors_says_how_to_fix() -> None:
    with GatewayProcess(None) as gw:
        assert "no vendor found" in gw.log()
        status, _ = gw.get("/readyz")
        assert status == 503


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "polyroute", "serve", "--port", str(port)],
            capture_output=True, text=True, timeout=60,
            env={**{k: v for k, v in os.environ.items()
                    if not k.endswith(("_API_KEY", "_BASE_URL")) and k != "POLYROUTE_CONFIG"},
                 "XDG_DATA_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert "listening on" not in result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    error = [line for line in result.stderr.splitlines() if line.startswith("polyroute:")]
    assert len(error) == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in error[0] and "--port" in error[0]


def _router(*args: str, pythonpath: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "polyroute", "router", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def _one_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), result.stderr


@pytest.mark.parametrize("command", ["eval", "train"])
def test_router_with_a_missing_data_path_says_which(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    _one_line(_router(command, "--data", str(missing)), f"router {command}", str(missing))


def test_router_bench_with_a_missing_data_path_says_which(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    result = subprocess.run(
        [sys.executable, "-m", "polyroute.autorouter.bench", "--data", str(missing)],
        capture_output=True, text=True, timeout=60)
    _one_line(result, "router bench", str(missing))


def test_router_eval_with_a_missing_artifact_says_which(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    missing = tmp_path / "router.npz"
    _one_line(_router("eval", "--data", str(data), "--artifact", str(missing)), str(missing))


@pytest.mark.parametrize("command", ["eval", "train"])
def test_router_without_the_router_extra_names_it(command: str, tmp_path: Path) -> None:
    # An environment without scipy: a module that fails to import the way an absent one does.
    (tmp_path / "scipy.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'scipy'\", name='scipy')\n")
    result = _router(command, "--data", str(tmp_path), pythonpath=str(tmp_path))
    _one_line(result, "[router]", "pip install")


def test_every_response_carries_a_request_id() -> None:
    """Not only model calls: health, readiness, metrics, the admin API, 404 and 405 too —
    each its own id, never the one a client sent."""
    with GatewayProcess(None) as gw:
        seen = []
        for method, path, status in [
                ("GET", "/healthz", 200), ("GET", "/readyz", 503), ("GET", "/metrics", 200),
                ("GET", "/admin/keys", 403), ("GET", "/v1/nothing-here", 404),
                ("DELETE", "/v1/chat/completions", 405),
                ("POST", "/v1/chat/completions", 400)]:
            request = urllib.request.Request(f"{gw.root_url}{path}", method=method,
                                             headers={"x-request-id": "client-chosen"})
            try:
                with urllib.request.urlopen(request, timeout=10) as r:
                    got, headers = r.status, r.headers
            except urllib.error.HTTPError as e:
                got, headers = e.code, e.headers
            assert got == status, (method, path)
            rid = headers.get("x-request-id")
            assert rid and rid != "client-chosen", (method, path, dict(headers))
            seen.append(rid)
        assert len(set(seen)) == len(seen)
