"""A real HTTP guardrail webhook for tests: it records what it was asked and refuses text
holding 'forbidden' (and, on answers, 'answer-bad')."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Webhook:
    """/open and /closed: refuse 'forbidden' (and, on answers, 'answer-bad'); /open is slow
    on 'slow', /closed on 'stall'."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.seen.append((self.path, body))
                text = body["text"]
                if (self.path == "/open" and "slow" in text) or (
                        self.path == "/closed" and "stall" in text):
                    time.sleep(2.5)  # past the 1 s budgets, with room for a loaded machine
                allow = "forbidden" not in text and not (
                    body["stage"] == "response" and "answer-bad" in text)
                out = json.dumps({"allow": allow, "reason": None if allow else
                                  f"{body['stage']} mentions something forbidden"}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the gateway stopped waiting: the point of the slow cases

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
