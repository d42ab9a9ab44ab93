"""Held-out figures against L-BFGS's iteration limit: was the recipe under-converged?

    python -m polyroute.autorouter.convergence --data ../shared/data/routing \\
        --iterations 25,50,75,100,150,200,400

Each fold is trained once, to the largest limit, and kept after every smaller one
(``train_router_iterates``): the row for ``n`` is exactly what ``router eval --holdout
--max-iterations n`` reports, at the cost of one cross-validation instead of one per limit.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time

from polyroute.autorouter.evaluate import Estimate, TableReport, evaluate_all
from polyroute.autorouter.holdout import cross_validated_iterates
from polyroute.autorouter.readers import load_routing_data
from polyroute.autorouter.training import TrainingConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polyroute.autorouter.convergence",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", action="append", required=True, metavar="DIR")
    parser.add_argument("--iterations", default="50,100,200,400",
                        help="comma-separated L-BFGS iteration limits")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    limits = sorted({int(n) for n in ns.iterations.split(",")})
    tables = load_routing_data(*ns.data)
    if not tables:
        print(f"convergence: no routing data found under {', '.join(ns.data)}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    scored = cross_validated_iterates(tables, ns.folds, ns.seed, TrainingConfig(seed=ns.seed),
                                      limits)
    print(f"{ns.folds}-fold cross-validation (seed {ns.seed}), {ns.resamples} bootstrap "
          f"resamples, {time.perf_counter() - started:.0f} s")
    print("| iterations | table | quality at 15 % | AIQ | matches the strongest at | APGR |")
    print("|---|---|---|---|---|---|")
    for limit in limits:
        for report in evaluate_all(scored[limit], ns.resamples, ns.seed):
            print(_row(limit, report))
    return 0


def _row(limit: int, report: TableReport) -> str:
    apgr = _interval(report.pair.apgr) if report.pair else "—"
    share = report.match_share.value
    match = f"{share:.1%}" if math.isfinite(share) else "never"
    return (f"| {limit} | {report.source} | {_interval(report.budgets[0.15]['router'])} | "
            f"{report.aiq['router'].value:.3f} | {match} | {apgr} |")


def _interval(estimate: Estimate) -> str:
    return f"{estimate.value:.3f} [{estimate.low:.3f}, {estimate.high:.3f}]"


if __name__ == "__main__":
    raise SystemExit(main())
