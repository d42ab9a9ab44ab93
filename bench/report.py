"""Benchmark results and their markdown rendering."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Targets the issue asks us to report against.
MAX_POLYROUTE_OVER_FLOOR = 2.0
MIN_LITELLM_OVER_POLYROUTE = 30.0
MAX_ADDED_P50_MS = 1.0


@dataclass(frozen=True)
class Scenario:
    stream: bool
    connections: int

    @property
    def label(self) -> str:
        return f"{'stream' if self.stream else 'chat'} c={self.connections}"


@dataclass
class Result:
    target: str
    scenario: Scenario
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_s: float
    upstream_cpu_s: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_s / self.requests if self.requests else float("nan")

    @property
    def upstream_cpu_ms_per_request(self) -> float:
        return 1000 * self.upstream_cpu_s / self.requests if self.requests else float("nan")


def pick_medians(runs: Sequence[Result]) -> list[Result]:
    """One result per (target, scenario): the run with the median CPU per request.

    Whole runs are kept rather than per-column medians so that every row is a real
    measurement; its spread is reported alongside (see cpu_spread).
    """
    groups: dict[tuple[str, Scenario], list[Result]] = {}
    for r in runs:
        groups.setdefault((r.target, r.scenario), []).append(r)
    picked = []
    for group in groups.values():
        ordered = sorted(group, key=lambda r: r.cpu_ms_per_request)
        picked.append(ordered[(len(ordered) - 1) // 2])
    return picked


def cpu_spread(runs: Sequence[Result], target: str, scenario: Scenario) -> tuple[float, float]:
    cpus = [r.cpu_ms_per_request for r in runs if r.target == target and r.scenario == scenario]
    return min(cpus), max(cpus)


def _find(results: Sequence[Result], target: str, scenario: Scenario) -> Result | None:
    for r in results:
        if r.target == target and r.scenario == scenario:
            return r
    return None


def _scenarios(results: Sequence[Result]) -> list[Scenario]:
    seen: list[Scenario] = []
    for r in results:
        if r.scenario not in seen:
            seen.append(r.scenario)
    return seen


def results_table(results: Sequence[Result], runs: Sequence[Result]) -> list[str]:
    spread = len(runs) > len(results)  # only worth a column when there were several rounds
    head = "| scenario | target | RPS | p50 ms | p99 ms | target CPU ms/req "
    head += "| CPU min–max " if spread else ""
    head += "| upstream CPU ms/req | requests | errors |"
    lines = [head, "|---|---|" + "---:|" * (8 if spread else 7)]
    for scenario in _scenarios(results):
        for r in results:
            if r.scenario != scenario:
                continue
            row = (
                f"| {scenario.label} | {r.target} | {r.rps:,.0f} | {r.p50_ms:.2f} "
                f"| {r.p99_ms:.2f} | {r.cpu_ms_per_request:.3f} "
            )
            if spread:
                low, high = cpu_spread(runs, r.target, scenario)
                row += f"| {low:.3f}–{high:.3f} "
            row += f"| {r.upstream_cpu_ms_per_request:.3f} | {r.requests:,} | {r.errors} |"
            lines.append(row)
    return lines


def _ratio(num: Result | None, den: Result | None) -> float | None:
    if num is None or den is None or den.cpu_ms_per_request <= 0:
        return None
    return num.cpu_ms_per_request / den.cpu_ms_per_request


def _check(ok: bool) -> str:
    return "met" if ok else "**missed**"


def ratios_table(results: Sequence[Result]) -> list[str]:
    lines = [
        "| scenario | polyroute / floor CPU | LiteLLM / polyroute CPU |",
        "|---|---:|---:|",
    ]
    for scenario in _scenarios(results):
        poly = _find(results, "polyroute", scenario)
        over_floor = _ratio(poly, _find(results, "floor", scenario))
        under_litellm = _ratio(_find(results, "litellm", scenario), poly)
        cells = []
        if over_floor is None:
            cells.append("n/a")
        else:
            ok = over_floor <= MAX_POLYROUTE_OVER_FLOOR
            cells.append(f"{over_floor:.2f}x ({_check(ok)})")
        if under_litellm is None:
            cells.append("n/a")
        else:
            ok = under_litellm >= MIN_LITELLM_OVER_POLYROUTE
            cells.append(f"{under_litellm:.1f}x ({_check(ok)})")
        lines.append(f"| {scenario.label} | {cells[0]} | {cells[1]} |")
    return lines


def added_latency_table(results: Sequence[Result]) -> list[str]:
    one = Scenario(stream=False, connections=1)
    direct = _find(results, "upstream", one)
    if direct is None:
        return ["(no direct-upstream run at 1 connection, so no added latency)"]
    lines = ["| target | p50 ms | added p50 ms vs upstream |", "|---|---:|---:|"]
    for r in results:
        if r.scenario != one or r.target == "upstream":
            continue
        added = r.p50_ms - direct.p50_ms
        mark = f" ({_check(added <= MAX_ADDED_P50_MS)})" if r.target == "polyroute" else ""
        lines.append(f"| {r.target} | {r.p50_ms:.2f} | {added:+.2f}{mark} |")
    return lines


def render(runs: Sequence[Result], meta: Sequence[tuple[str, str]], notes: Sequence[str]) -> str:
    results = pick_medians(runs)
    lines = ["# polyroute benchmark", ""]
    lines += [f"- **{key}**: {value}" for key, value in meta]
    lines += ["", "## Results", "", *results_table(results, runs), ""]
    lines += [
        "Target CPU = utime+stime of the target's whole process tree over the wrk run, divided "
        "by requests completed (for `upstream` the target is the mock upstream itself). With "
        "several rounds, each row is the round with the median target CPU, and *CPU min–max* "
        "is the spread over all rounds.",
        "",
        "## CPU ratios",
        "",
        f"Targets: polyroute ≤ {MAX_POLYROUTE_OVER_FLOOR:g}x the floor's CPU per request, "
        f"LiteLLM ≥ {MIN_LITELLM_OVER_POLYROUTE:g}x polyroute's.",
        "",
        *ratios_table(results),
        "",
        "## Added latency at 1 connection (non-streaming)",
        "",
        f"Target: polyroute adds ≤ {MAX_ADDED_P50_MS:g} ms to the direct-upstream p50.",
        "",
        *added_latency_table(results),
        "",
    ]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)
