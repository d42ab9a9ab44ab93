"""CPU per request of vendor-share caps (issue 14) on the router alone (no sockets): a
weighted group routed without caps, and with ``max_share`` routed and counted (as the
gateway does when the answer arrives).

    python bench/caps_cost.py [--n 20000]

Prints microseconds per request (best of 7 rounds, process CPU time, so other processes on
the machine weigh less); run it on a quiet machine."""

from __future__ import annotations

import argparse
import tempfile
import time
import timeit
from pathlib import Path
from random import Random

from polyroute.config import load_config
from polyroute.engine.router import Router

CONFIG = """
providers:
  openai: {base_url: "http://127.0.0.1:9/v1", auth: none}
  anthropic: {protocol: anthropic, base_url: "http://127.0.0.1:9", auth: none}
model_groups:
  chat:
    CAPS
    deployments:
      - {provider: openai, model: gpt-4o, weight: 9}
      - {provider: anthropic, model: claude-sonnet-4-5}
"""


def _router(caps: str) -> Router:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "polyroute.yaml"
        path.write_text(CONFIG.replace("CAPS", caps), encoding="utf-8")
        return Router(load_config(str(path), {}), rng=Random(1))


def best(n: int, call: object) -> float:
    timer = timeit.Timer(call, timer=time.process_time)  # type: ignore[arg-type]
    return min(timer.repeat(number=n, repeat=7)) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    n = parser.parse_args().n
    off = _router("routing: weighted")
    on = _router("caps: {max_share: 0.5}")

    def capped() -> None:
        route = on.route("chat")
        on.caps.served("chat", None, None, route.candidates[0].vendor)

    print(f"caps off: route()          {best(n, lambda: off.route('chat')):6.2f} µs")
    print(f"caps on:  route() + count  {best(n, capped):6.2f} µs")


if __name__ == "__main__":
    main()
