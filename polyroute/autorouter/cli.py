"""``router train`` and ``router eval``: :func:`add_cli` hangs them on any argparse parser."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from polyroute.autorouter.defaults import DEFAULT_ARTIFACT

LedgerExport = Callable[[str | None, Path], int]
"""Writes the ledger's labelled rows as traffic JSONL to a path; returns how many (given by
the command line's composition root: reading the ledger is above this package's layer)."""


def add_cli(subparsers: Any, ledger_export: LedgerExport | None = None) -> None:
    """Register ``router`` (with ``train`` and ``eval``) on an ``add_subparsers()`` object."""
    router = subparsers.add_parser("router", help="train and evaluate the auto-router")
    register_commands(router.add_subparsers(dest="router_command", required=True),
                      ledger_export)


def register_commands(subparsers: Any, ledger_export: LedgerExport | None = None) -> None:
    train = subparsers.add_parser(
        "train", help="train the router on routing data (deterministic)",
        description="Train per-model quality heads on every routing file under --data, and "
                    "with --from-ledger on the requests labelled through POST /v1/feedback.")
    train.add_argument("--data", action="append", default=[], metavar="DIR",
                       help="directory or file of routing data (repeatable): RouterBench CSV, "
                            "LLMRouter JSON/JSONL, RouteLLM CSV, or logged traffic JSONL")
    train.add_argument("--from-ledger", action="store_true",
                       help="also train on the ledger's labelled requests (those whose key "
                            "consented to keeping prompts: retain_bodies)")
    train.add_argument("--config", help="the gateway's config file, for --from-ledger's "
                                        "database (default: $POLYROUTE_CONFIG)")
    train.add_argument("--out", default=str(DEFAULT_ARTIFACT), help="artifact to write")
    _training_flags(train)
    train.set_defaults(run=run_train, ledger_export=ledger_export)

    evaluate = subparsers.add_parser(
        "eval", help="cost-quality curve, AIQ, APGR/CPT and baselines on held-out prompts",
        description="Evaluate on --data. By default the trained artifact scores the prompts it "
                    "never saw (exact repeats of training prompts are left out). With "
                    "--holdout the recipe is retrained k times on --data itself, each fold "
                    "held out (by prompt; by subject for RouteLLM).")
    evaluate.add_argument("--data", action="append", required=True, metavar="DIR")
    evaluate.add_argument("--artifact", default=str(DEFAULT_ARTIFACT))
    evaluate.add_argument("--holdout", action="store_true",
                          help="k-fold: retrain on the other folds, score each held-out fold")
    evaluate.add_argument("--folds", type=int, default=5)
    evaluate.add_argument("--profile", action="append", default=[], metavar="MODEL=PROFILE",
                          help="score a data set's model with a trained model's head")
    evaluate.add_argument("--resamples", type=int, default=200, help="bootstrap resamples")
    evaluate.add_argument("--plot", metavar="PNG", help="write the cost-quality plot here")
    evaluate.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    _training_flags(evaluate)
    evaluate.set_defaults(run=run_eval)


def _training_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-iterations", type=int, default=None)
    parser.add_argument("--word-vectors", metavar="NPZ", default=None,
                        help="also feature each prompt's mean static word vector from this "
                             "table (python -m polyroute.autorouter.distill)")
    parser.add_argument("-q", "--quiet", action="store_true")


def _config(ns: argparse.Namespace) -> Any:
    from polyroute.autorouter.training import TrainingConfig

    config = TrainingConfig(seed=ns.seed, word_vectors=ns.word_vectors)
    if ns.max_iterations is not None:
        config = TrainingConfig(seed=ns.seed, max_iterations=ns.max_iterations,
                                word_vectors=ns.word_vectors)
    return config


def _logging(ns: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING if ns.quiet else logging.INFO,
                        format="%(message)s", stream=sys.stderr)


def _router_extra_missing(command: str) -> bool:
    """Training and evaluation need scipy, which only the ``[router]`` extra installs: say so
    in one line instead of an import traceback."""
    try:
        import scipy  # type: ignore[import-untyped, unused-ignore]  # noqa: F401
    except ImportError:
        print(f"router {command}: needs the [router] extra (scipy): "
              "pip install 'polyroute[router]'", file=sys.stderr)
        return True
    return False


def _absent(command: str, paths: list[str]) -> bool:
    """A mistyped --data or --artifact path is the operator's error: one line, no traceback."""
    missing = [p for p in paths if not Path(p).exists()]
    for path in missing:
        print(f"router {command}: no such file or directory: {path}", file=sys.stderr)
    return bool(missing)


def run_train(ns: argparse.Namespace) -> int:
    if _router_extra_missing("train") or _absent("train", ns.data):
        return 2
    if not ns.data and not ns.from_ledger:
        print("router train: give --data DIR (repeatable) and/or --from-ledger",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="polyroute-ledger-") as scratch:
        data = list(ns.data)
        if ns.from_ledger:
            export: LedgerExport | None = getattr(ns, "ledger_export", None)
            if export is None:
                print("router train --from-ledger: run it as 'polyroute router train', which "
                      "can read the gateway's database", file=sys.stderr)
                return 2
            path = Path(scratch) / "ledger-feedback.jsonl"
            rows = export(ns.config, path)
            print(f"  ledger: {rows} labelled requests with their prompts", file=sys.stderr)
            if rows:
                data.append(str(path))
        return _train(ns, data)


def _train(ns: argparse.Namespace, data: list[str]) -> int:
    from polyroute.autorouter.readers import load_routing_data
    from polyroute.autorouter.training import train_router

    _logging(ns)
    tables = load_routing_data(*data) if data else []
    if not tables:
        print(f"router train: no routing data found under {', '.join(data) or 'the ledger'}",
              file=sys.stderr)
        return 2
    for table in tables:
        print(f"  {table.name}: {len(table)} prompts", file=sys.stderr)
    artifact = train_router(tables, _config(ns))
    artifact.save(ns.out)
    size = Path(ns.out).stat().st_size
    print(f"wrote {ns.out} ({size / 1e6:.2f} MB, {len(artifact.heads)} heads, "
          f"{len(artifact.vocabulary)} terms)")
    return 0


def run_eval(ns: argparse.Namespace) -> int:
    needed = ns.data if ns.holdout else [*ns.data, ns.artifact]
    if _router_extra_missing("eval") or _absent("eval", needed):
        return 2
    from polyroute.autorouter.artifact import RouterArtifact
    from polyroute.autorouter.evaluate import evaluate_all
    from polyroute.autorouter.holdout import (
        artifact_predictions,
        cross_validated_predictions,
    )
    from polyroute.autorouter.plot import can_plot, write_plot
    from polyroute.autorouter.readers import load_routing_data
    from polyroute.autorouter.report import render

    _logging(ns)
    started = time.perf_counter()
    tables = load_routing_data(*ns.data)
    if not tables:
        print(f"router eval: no routing data found under {', '.join(ns.data)}",
              file=sys.stderr)
        return 2
    if ns.holdout:
        scored = cross_validated_predictions(tables, ns.folds, ns.seed, _config(ns))
        how = f"{ns.folds}-fold cross-validation on the data itself (seed {ns.seed})"
    else:
        profiles = dict(p.split("=", 1) for p in ns.profile)
        scored = artifact_predictions(RouterArtifact.load(ns.artifact), tables, profiles)
        how = f"artifact {ns.artifact}"
    scored = [s for s in scored if len(s.table)]
    if not scored:
        print("router eval: nothing left to evaluate: every prompt was seen in training or "
              "no model could be mapped (try --holdout, or --profile)", file=sys.stderr)
        return 1
    reports = evaluate_all(scored, ns.resamples, ns.seed)
    header = (f"polyroute router eval — {how}; {ns.resamples} bootstrap resamples; "
              f"{time.perf_counter() - started:.0f} s")
    print(render(reports, header))
    if ns.json:
        Path(ns.json).write_text(json.dumps([_jsonable(r) for r in reports], indent=1))
    if ns.plot:
        if can_plot():
            write_plot(reports, ns.plot)
            print(f"wrote {ns.plot}")
        else:
            print("matplotlib is not installed: no plot (pip install matplotlib)",
                  file=sys.stderr)
    return 0


def _jsonable(value: Any) -> Any:
    import numpy as np  # here: the gateway's own CLI builds this parser on every start

    if is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polyroute.autorouter",
                                     description="Train and evaluate polyroute's auto-router.")
    register_commands(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args(argv)
    code: int = ns.run(ns)
    return code
