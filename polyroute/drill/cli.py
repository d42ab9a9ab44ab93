"""``polyroute drill`` flags."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from polyroute.config import ConfigError
from polyroute.drill import workload
from polyroute.drill.report import as_json, render
from polyroute.drill.run import DrillPlan, Failure, default_models, load_for_drill, run

if TYPE_CHECKING:
    from polyroute.drill.replay import ReplayReport


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    drill = sub.add_parser(
        "drill", help="rehearse losing vendors: replay a workload against simulators",
        description="Replace every provider of the config with a simulator, run the workload "
                    "once healthy and once with the chosen providers failing, and report per "
                    "model group.")
    drill.add_argument("--config", help="the gateway config to drill (default: the vendors "
                       "the environment enables, and those named by --fail and --models)")
    drill.add_argument("--fail", action="append", default=[], metavar="PROVIDER=FAULT[;k=v]",
                       help="make a provider fail, e.g. openai=unavailable or "
                            "'openai=server_error;probability=0.3' (repeatable; faults as in "
                            "docs/simulator.md)")
    drill.add_argument("--requests", type=int, default=200)
    drill.add_argument("--concurrency", type=int, default=8)
    drill.add_argument("--models", help="comma-separated model groups (default: all)")
    drill.add_argument("--stream", action="store_true", help="stream the generated requests")
    drill.add_argument("--workload", type=Path, help="JSONL file of chat request bodies")
    drill.add_argument("--sim-latency-ms", type=float, default=20.0)
    drill.add_argument("--tokens-per-second", type=float, default=0.0)
    drill.add_argument("--json", type=Path, help="also write the report as JSON here")
    drill.add_argument("--min-served", type=_fraction, metavar="FRACTION",
                       help="exit 1 when a model group serves less than this share of its "
                            "requests in the failing run (e.g. 0.95), for CI")
    exit_drill = drill.add_argument_group(
        "exit drill (issue 14)", "replay the shape of the traffic the config's ledger recorded "
        "with a vendor gone; see docs/independence.md")
    exit_drill.add_argument("--lose", metavar="VENDOR", help="the provider that is gone")
    exit_drill.add_argument("--replay", metavar="SINCE",
                            help="replay the ledger's traffic since then (7d, 24h, 2026-05-01)")
    exit_drill.add_argument("--until", help="…until then (same forms; default now)")
    exit_drill.add_argument("--replay-span", type=float, default=10.0, metavar="SECONDS",
                            help="compress the recorded arrival times into at most this long")
    exit_drill.add_argument("--min-readiness", type=int, metavar="SCORE",
                            help="exit 1 when a model group's exit-readiness score is below "
                                 "this (0-100), for CI")
    drill.set_defaults(run=main)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1")
    return value


def parse_failure(text: str) -> Failure:
    provider, sep, spec = text.partition("=")
    if not sep or not provider or not spec:
        raise ValueError(f"--fail {text!r}: write PROVIDER=FAULT[;key=value]")
    fault, *pairs = spec.split(";")
    params: dict[str, float] = {}
    probability = 1.0
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"--fail {text!r}: {key} needs a number") from None
        if key.strip() == "probability":
            probability = number
        else:
            params[key.strip()] = number
    return Failure(provider.strip(), fault.strip(), params, probability)


def main(ns: argparse.Namespace) -> int:
    # Transitions are in the report; the gateway's own warnings would only interleave with it.
    logging.basicConfig(level=logging.ERROR)
    if ns.lose is not None or ns.replay is not None:
        return exit_drill(ns)
    try:
        failures = [parse_failure(f) for f in ns.fail]
        models = [m.strip() for m in ns.models.split(",")] if ns.models else []
        named = {f.provider for f in failures} | {m.partition("/")[0] for m in models if "/" in m}
        config = load_for_drill(ns.config, named)
        models = models or default_models(config)
        if ns.workload is not None:
            requests = workload.from_file(ns.workload)
        elif models:
            requests = workload.generated(models, ns.requests, ns.stream)
        else:
            raise ValueError("the config has no model groups: pass --models or --workload")
        plan = DrillPlan(ns.config, failures, requests, ns.concurrency, ns.sim_latency_ms,
                         ns.tokens_per_second)
        result = asyncio.run(run(plan, config))
    except (ConfigError, ValueError, OSError) as exc:
        print(f"polyroute drill: {exc}", file=sys.stderr)
        return 2
    labels = [f.label for f in failures]
    reports, received = result.groups, result.upstream_requests
    print(render(reports, labels, received))
    if ns.json is not None:
        report = as_json(reports, labels, received)
        ns.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    if ns.min_served is not None:
        short = [r for r in reports if r.served < ns.min_served * (r.served + r.failed)]
        for r in short:
            print(f"polyroute drill: {r.group} served {r.served} of {r.served + r.failed} "
                  f"requests, below --min-served {ns.min_served:g}", file=sys.stderr)
        if short:
            return 1
    return 0


def exit_drill(ns: argparse.Namespace) -> int:
    """``--lose VENDOR --replay SINCE``: the ledger's traffic, replayed without the vendor."""
    from polyroute.drill.replay import ReplayPlan, render, replay
    from polyroute.storage.usage import shapes
    from polyroute.surface.admin.timespec import parse_time
    from polyroute.wiring import open_database

    if ns.lose is None or ns.replay is None or ns.config is None:
        print("polyroute drill: an exit drill needs --lose VENDOR, --replay SINCE and --config "
              "(whose ledger is replayed)", file=sys.stderr)
        return 2
    try:
        since = parse_time(ns.replay)
        until = parse_time(ns.until) if ns.until else time.time() + 1
        config = load_for_drill(ns.config)

        async def go() -> ReplayReport:
            db = open_database(config)
            await db.start()
            try:
                recorded = await shapes(db, since, until)
            finally:
                await db.close()
            if not recorded:
                raise ValueError("the ledger has no answered request in that window")
            return await replay(ReplayPlan(ns.lose, recorded, ns.concurrency,
                                           ns.replay_span, ns.sim_latency_ms), config)

        report = asyncio.run(go())
    except (ConfigError, ValueError, OSError) as exc:
        print(f"polyroute drill: {exc}", file=sys.stderr)
        return 2
    print(render(report))
    if ns.json is not None:
        ns.json.write_text(json.dumps(msgspec.to_builtins(report), indent=2), encoding="utf-8")
    if ns.min_readiness is not None:
        low = [s for s in report.scopes if s.scope == "group" and s.readiness < ns.min_readiness]
        for s in low:
            print(f"polyroute drill: group {s.name} exit readiness {s.readiness} is below "
                  f"--min-readiness {ns.min_readiness}", file=sys.stderr)
        if low:
            return 1
    return 0
