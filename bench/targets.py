"""How each benchmark process is configured and started.

Every generated file lives under the work directory (bench/.work by default).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import payloads
import procs

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent

# Pinned: the figures are only comparable run to run with the same LiteLLM. 1.108.0 is the
# newest release whose [proxy] extra resolves from the package index used here (later ones
# pin litellm-proxy / litellm-enterprise builds that the index does not carry).
LITELLM_VERSION = "1.108.0"


@dataclass
class Target:
    """A running process that wrk is pointed at, and the paths for the two request kinds."""

    name: str
    proc: procs.Proc
    port: int
    chat_path: str
    stream_path: str
    ready_timeout: float = 30.0
    client_key: str = payloads.CLIENT_KEY

    def url(self, stream: bool) -> str:
        return f"http://127.0.0.1:{self.port}{self.stream_path if stream else self.chat_path}"


# --- mock upstream --------------------------------------------------------------------------


def nginx_conf(work: Path, port: int) -> str:
    # nginx cannot `return` a body this long from its config, and its static module answers
    # POST with 405; so each route returns 405 and error_page turns that into a 200 with the
    # canned file (the internal redirect is a GET, which the static module serves).
    return f"""\
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush off;
    etag off;
    if_modified_since off;
    open_file_cache max=16 inactive=1h;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_buffer_size 64k;
    client_body_temp_path {work}/tmp;
    proxy_temp_path {work}/tmp;
    fastcgi_temp_path {work}/tmp;
    uwsgi_temp_path {work}/tmp;
    scgi_temp_path {work}/tmp;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = {payloads.UPSTREAM_CHAT_PATH} {{
            error_page 405 =200 /_canned/chat.json;
            return 405;
        }}
        location = {payloads.UPSTREAM_STREAM_PATH} {{
            error_page 405 =200 /_canned/stream.sse;
            return 405;
        }}
        location /_canned/ {{
            internal;
            alias {work}/canned/;
            types {{ application/json json; text/event-stream sse; }}
            add_header Cache-Control no-cache;
        }}
        location / {{ return 404; }}
    }}
}}
"""


def _write_canned(work: Path) -> None:
    canned = work / "canned"
    canned.mkdir(parents=True, exist_ok=True)
    (canned / "chat.json").write_bytes(payloads.completion_body())
    (canned / "stream.sse").write_bytes(payloads.sse_body())


def start_upstream(kind: str, work: Path, cpus: str | None) -> Target:
    """The mock upstream: nginx with canned bodies, or the uvloop fallback."""
    port = procs.free_port()
    if kind == "nginx":
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        conf_dir = work / "nginx"
        (conf_dir / "tmp").mkdir(parents=True, exist_ok=True)
        _write_canned(conf_dir)
        conf = conf_dir / "nginx.conf"
        conf.write_text(nginx_conf(conf_dir, port))
        argv = [nginx, "-e", str(conf_dir / "error.log"), "-p", str(conf_dir), "-c", str(conf)]
    else:
        argv = [sys.executable, str(BENCH_DIR / "mock_upstream.py"), "--port", str(port)]
    proc = procs.start("upstream", argv, work / "logs" / "upstream.log", cpus=cpus)
    return Target(
        "upstream", proc, port, payloads.UPSTREAM_CHAT_PATH, payloads.UPSTREAM_STREAM_PATH
    )


def nginx_available() -> bool:
    return shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()


# --- floor ----------------------------------------------------------------------------------


def start_floor(work: Path, upstream_port: int, cpus: str | None) -> Target:
    port = procs.free_port()
    argv = [
        sys.executable,
        str(BENCH_DIR / "floor_proxy.py"),
        "--port",
        str(port),
        "--upstream",
        f"http://127.0.0.1:{upstream_port}",
    ]
    proc = procs.start("floor", argv, work / "logs" / "floor.log", cpus=cpus)
    # Path-preserving passthrough: the same paths as the upstream itself.
    return Target("floor", proc, port, payloads.UPSTREAM_CHAT_PATH, payloads.UPSTREAM_STREAM_PATH)


# --- polyroute ------------------------------------------------------------------------------


def polyroute_config(upstream_port: int, home: Path, extra: str = "") -> str:
    """The gateway config: one provider per upstream path, one model group per request kind.

    Request log and metrics stay at their defaults (on); only the database is put in the work
    dir.
    """
    base = f"http://127.0.0.1:{upstream_port}"
    return f"""\
storage:
  sqlite_path: {home / "polyroute.db"}
providers:
  mock:
    protocol: openai
    base_url: {base}/v1
    api_key: ${{BENCH_UPSTREAM_KEY}}
  mock-stream:
    protocol: openai
    base_url: {base}/stream/v1
    api_key: ${{BENCH_UPSTREAM_KEY}}
model_groups:
  {payloads.MODEL}:
    deployments:
      - provider: mock
        model: {payloads.UPSTREAM_MODEL}
  {payloads.STREAM_MODEL}:
    deployments:
      - provider: mock-stream
        model: {payloads.UPSTREAM_MODEL}
{extra}"""


@contextlib.contextmanager
def polyroute_source(tree: Path | None) -> Iterator[None]:
    """Start polyroute from another source tree (``run.py --baseline``): its package goes
    first on the started process's PYTHONPATH, ahead of the installed (editable) one."""
    if tree is None:
        yield
        return
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(tree) if before is None else f"{tree}{os.pathsep}{before}"
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


def polyroute_executable() -> str | None:
    beside_python = Path(sys.executable).parent / "polyroute"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("polyroute")


def polyroute_available() -> bool:
    exe = polyroute_executable()
    if exe is None:
        return False
    try:
        done = subprocess.run(
            [exe, "serve", "--help"], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


MASTER_KEY = "sk-bench-master-key-0123456789"
_KEYS_CONFIG = "auth:\n  master_key: ${BENCH_MASTER_KEY}\n"
# Database 13 of the local Redis: the polyroute-redis target's limits and reservations.
_REDIS_CONFIG = _KEYS_CONFIG + "state:\n  redis_url: redis://127.0.0.1:6379/13\n"


def extra_config(keys: bool, redis: bool) -> str:
    """The config a bench tool's ``--keys`` / ``--redis`` adds to the defaults."""
    return _REDIS_CONFIG if redis else _KEYS_CONFIG if keys else ""


def start_polyroute_keys(work: Path, upstream_port: int, cpus: str | None) -> Target:
    """polyroute with a client key carrying RPM, TPM, concurrency and a budget: every request
    is authenticated, rate-limited, reserves and settles its cost, and lands in the ledger."""
    return _with_key(start_polyroute(work, upstream_port, cpus, _KEYS_CONFIG, "polyroute-keys"))


def start_polyroute_redis(work: Path, upstream_port: int, cpus: str | None) -> Target:
    """The same, with limits and reservations in Redis (127.0.0.1:6379), as replicas use."""
    return _with_key(start_polyroute(work, upstream_port, cpus, _REDIS_CONFIG, "polyroute-redis"))


_TWO_WORKERS = "server:\n  workers: 2\n"


def start_polyroute_w2(work: Path, upstream_port: int, cpus: str | None) -> Target:
    """polyroute defaults served by two worker processes (serve --workers 2)."""
    return start_polyroute(work, upstream_port, cpus, _TWO_WORKERS, "polyroute-w2")


def start_polyroute_redis_w2(work: Path, upstream_port: int, cpus: str | None) -> Target:
    """polyroute-redis served by two worker processes: keys, limits and budgets shared
    through Redis, as more than one worker with keys requires."""
    extra = _REDIS_CONFIG + _TWO_WORKERS
    return _with_key(start_polyroute(work, upstream_port, cpus, extra, "polyroute-redis-w2"))


def _with_key(target: Target) -> Target:
    import http.client
    import json
    import time

    body = json.dumps({"name": "bench", "rpm": 10_000_000, "tpm": 10_000_000_000,
                       "max_concurrent": 10_000, "total_budget_usd": 1_000_000}).encode()
    deadline = time.monotonic() + target.ready_timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=5)
            conn.request("POST", "/admin/keys", body=body, headers={
                "Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            conn.close()
            if response.status == 201:
                target.client_key = json.loads(payload)["key"]
                return target
            raise RuntimeError(f"creating the bench key failed: {response.status} {payload!r}")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_polyroute(
    work: Path, upstream_port: int, cpus: str | None, extra: str = "", name: str = "polyroute"
) -> Target:
    exe = polyroute_executable()
    if exe is None:
        raise RuntimeError("polyroute is not installed: pip install -e .")
    home = work / name
    home.mkdir(parents=True, exist_ok=True)
    # A fresh ledger database each run: one grown by earlier runs would make inserts drift.
    for stale in home.glob("polyroute.db*"):
        stale.unlink()
    config = home / "polyroute.yaml"
    config.write_text(polyroute_config(upstream_port, home, extra))
    port = procs.free_port()
    # The XDG dirs keep any other state polyroute might write under the work dir too.
    env = {
        "BENCH_UPSTREAM_KEY": payloads.UPSTREAM_KEY,
        "BENCH_MASTER_KEY": MASTER_KEY,
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
    }
    argv = [exe, "serve", "--config", str(config), "--port", str(port)]
    proc = procs.start(name, argv, work / "logs" / f"{name}.log", env, cpus, home)
    return Target(name, proc, port, payloads.GATEWAY_CHAT_PATH, payloads.GATEWAY_CHAT_PATH)


# --- LiteLLM --------------------------------------------------------------------------------


def litellm_venv(work: Path) -> Path:
    return work / "litellm-venv"


def installed_litellm_version(work: Path) -> str | None:
    python = litellm_venv(work) / "bin" / "python"
    if not python.exists():
        return None
    done = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_litellm(work: Path) -> str:
    """Create the benchmark-only LiteLLM venv (cached across runs) and return its version."""
    if installed_litellm_version(work) == LITELLM_VERSION:
        return LITELLM_VERSION
    venv = litellm_venv(work)
    print(f"installing litellm[proxy]=={LITELLM_VERSION} into {venv} (takes a minute or two)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
    log_path = work / "logs" / "litellm-install.log"
    with log_path.open("wb") as log:
        done = subprocess.run(
            [str(venv / "bin" / "pip"), "install", f"litellm[proxy]=={LITELLM_VERSION}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=1800,
        )
    if done.returncode != 0:
        raise RuntimeError(f"pip install of LiteLLM failed: see {log_path}")
    version = installed_litellm_version(work)
    if version != LITELLM_VERSION:
        raise RuntimeError(f"LiteLLM install failed (found {version!r})")
    return version


def litellm_config(upstream_port: int) -> str:
    base = f"http://127.0.0.1:{upstream_port}"
    return f"""\
model_list:
  - model_name: {payloads.MODEL}
    litellm_params:
      model: openai/{payloads.UPSTREAM_MODEL}
      api_base: {base}/v1
      api_key: dummy
  - model_name: {payloads.STREAM_MODEL}
    litellm_params:
      model: openai/{payloads.UPSTREAM_MODEL}
      api_base: {base}/stream/v1
      api_key: dummy
general_settings:
  master_key: {payloads.CLIENT_KEY}
"""


def start_litellm(work: Path, upstream_port: int, cpus: str | None) -> Target:
    home = work / "litellm"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "litellm.yaml"
    config.write_text(litellm_config(upstream_port))
    port = procs.free_port()
    exe = litellm_venv(work) / "bin" / "litellm"
    argv = [
        str(exe),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    # Offline: the bundled model cost map instead of a fetch that cannot succeed here.
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = procs.start("litellm", argv, work / "logs" / "litellm.log", env, cpus, home)
    return Target(
        "litellm",
        proc,
        port,
        payloads.GATEWAY_CHAT_PATH,
        payloads.GATEWAY_CHAT_PATH,
        ready_timeout=180.0,
    )
