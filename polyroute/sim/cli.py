"""`polyroute sim` / `python -m polyroute.sim`: run the simulator from a shell."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from polyroute.sim.faults import FAULT_PARAMS, FaultSpecError, parse_fault_spec
from polyroute.sim.server import start_sim
from polyroute.sim.settings import DEFAULT_MODELS, DEFAULT_TEXT, FaultRule, SimSettings


def parse_rule(spec: str) -> FaultRule:
    """`NAME[;k=v...]` or `MODEL_GLOB=NAME[;k=v...]` as a forever-applying rule."""
    head, sep, rest = spec.partition(";")
    model = "*"
    if "=" in head:
        model, _, head = head.partition("=")
    fault = parse_fault_spec(head + sep + rest)
    return FaultRule(fault=str(fault.name), model=model.strip() or "*", params=dict(fault.params))


def _fault_help() -> str:
    lines = []
    for name, params in FAULT_PARAMS.items():
        rendered = ", ".join(f"{key}={value:g}" for key, value in params.items())
        lines.append(f"  {name}" + (f" ({rendered})" if rendered else ""))
    return "faults (defaults):\n" + "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polyroute sim",
        description="OpenAI-protocol provider simulator with fault injection.",
        epilog=_fault_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--text", default=DEFAULT_TEXT, help="reply text of non-echo models")
    parser.add_argument("--tokens-per-second", type=float, default=0.0, help="0 = unpaced")
    parser.add_argument("--chunk-tokens", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before headers")
    parser.add_argument("--rate-limit-rpm", type=int, default=0,
                        help="requests per minute before 429 (0 = no quota)")
    parser.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    parser.add_argument(
        "--model",
        dest="models",
        action="append",
        default=None,
        help=f"model id listed by /v1/models (repeatable; default: {', '.join(DEFAULT_MODELS)})",
    )
    parser.add_argument(
        "--fault",
        dest="faults",
        action="append",
        default=[],
        metavar="[MODEL_GLOB=]NAME[;k=v]",
        help="server-wide fault rule (repeatable, first match wins)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for rule probabilities")
    parser.add_argument("--embedding-dimensions", type=int, default=1536)
    return parser


def settings_from_args(args: argparse.Namespace) -> SimSettings:
    return SimSettings(
        host=args.host,
        port=args.port,
        text=args.text,
        tokens_per_second=args.tokens_per_second,
        chunk_tokens=args.chunk_tokens,
        latency_ms=args.latency_ms,
        rate_limit_rpm=args.rate_limit_rpm,
        api_key=args.api_key,
        models=args.models or list(DEFAULT_MODELS),
        rules=[parse_rule(spec) for spec in args.faults],
        seed=args.seed,
        embedding_dimensions=args.embedding_dimensions,
    )


async def serve(settings: SimSettings) -> None:
    running = await start_sim(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Not available off the main thread or on Windows; Ctrl-C still interrupts there.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    print(f"polyroute sim listening on {running.base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await running.close()


def _run(coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except FaultSpecError as exc:
        parser.error(str(exc))
    try:
        _run(serve(settings))
    except OSError as exc:
        print(f"polyroute sim: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
