"""The gateway's CPU per request with tracing off and on, end to end (issue 13).

    python bench/tracing_e2e.py [--requests 2000] [--rounds 2]   (NO_TRACEPARENT=1: none sent)

Starts the simulator and, per round, a gateway without and one with ``tracing`` (exporting
to a loopback OTLP sink in this process that answers 200), sends ``--requests``
non-streaming chat requests one after another over one keep-alive connection, and reads the
gateway process's CPU time (all threads, /proc/<pid>/stat) before and after. Rounds
interleave the two so that load from other processes hits both alike. Coarse: the gateway's
per-request CPU is ~100× what tracing adds, so machine noise is of the same order.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")
CLIENT_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
BODY = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "Say hello."}],
                   "max_tokens": 16}).encode()


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def wait_http(port: int, path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sink:
    def __init__(self) -> None:
        self.bytes = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                sink.bytes += len(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"


def run(workdir: Path, sim_port: int, tracing: dict[str, Any] | None, n: int) -> float:
    port = free_port()
    config = {"providers": {"sim": {"base_url": f"http://127.0.0.1:{sim_port}/v1",
                                    "api_key": "${SIM_KEY}"}},
              "model_groups": {"chat": {"deployments": [{"provider": "sim",
                                                         "model": "gpt-4o-mini"}]}},
              "storage": {"sqlite_path": str(workdir / f"{port}.db")}}
    if tracing:
        config["tracing"] = tracing
    path = workdir / f"{port}.yaml"
    path.write_text(json.dumps(config))
    env = {**os.environ, "SIM_KEY": "sk-sim"}
    proc = subprocess.Popen([sys.executable, "-m", "polyroute", "serve", "--config", str(path),
                             "--port", str(port), "--log-level", "WARNING"], env=env)
    try:
        wait_http(port, "/healthz")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Content-Type": "application/json", "Authorization": "Bearer x"}
        if not os.environ.get("NO_TRACEPARENT"):  # the client's trace (sampled)
            headers["traceparent"] = CLIENT_TRACEPARENT
        for _ in range(200):  # warm up
            conn.request("POST", "/v1/chat/completions", BODY, headers)
            conn.getresponse().read()
        before = cpu_s(proc.pid)
        for _ in range(n):
            conn.request("POST", "/v1/chat/completions", BODY, headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
        time.sleep(1.5)  # the last export
        return (cpu_s(proc.pid) - before) / n
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sink = Sink()
    sim_port = free_port()
    sim = subprocess.Popen([sys.executable, "-m", "polyroute", "sim", "--port", str(sim_port),
                            "--api-key", "sk-sim"], stdout=subprocess.DEVNULL)
    try:
        wait_http(sim_port, "/_sim/stats")
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                off = run(Path(tmp), sim_port, None, args.requests)
                on = run(Path(tmp), sim_port, {"enabled": True, "endpoint": sink.url,
                                               "export_interval_s": 0.2}, args.requests)
                print(f"round {r + 1}: tracing off {off * 1e6:7.0f} µs CPU/request, "
                      f"on {on * 1e6:7.0f} µs, difference {(on - off) * 1e6:+6.0f} µs")
        print(f"OTLP bytes received: {sink.bytes}")
    finally:
        sim.terminate()
        sim.wait(10)


if __name__ == "__main__":
    main()
