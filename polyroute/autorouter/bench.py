"""Decision latency: ``python -m polyroute.autorouter.bench [--data DIR]``.

Times ``AutoRouter.choose`` — features, heads, costs and ranking, i.e. all the router adds to
a request — over real prompts (from --data if given, else built-in samples of 10 to 8000
characters), one call at a time like the engine makes them. ``--encoder-probe`` also times the
forward pass of an encoder shaped like all-MiniLM-L6-v2 (6 layers, 384 wide, random weights:
speed does not depend on the weights) in numpy, to show what a small embedding model would
cost on this CPU before any quality question arises.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from polyroute.autorouter.decision import Candidate, Policy
from polyroute.autorouter.defaults import DEFAULT_ARTIFACT
from polyroute.autorouter.router import AutoRouter

_SAMPLES = (
    "hi",
    "What is the capital of France?",
    "Write a Python function that merges two sorted lists in O(n) time, with tests.",
    "Prove that the square root of 2 is irrational, step by step.",
    "Translate into German: the meeting is moved to Thursday at 3 pm.",
    "Summarise the following text in three bullet points:\n" + "lorem ipsum dolor " * 400,
    "Question: which gas do plants absorb?\nA) oxygen\nB) carbon dioxide\nC) helium\nAnswer:",
)

CANDIDATES = (
    Candidate("frontier", 10.0, 30.0, "gpt-4-1106-preview"),
    Candidate("mid", 0.6, 0.6, "mixtral-8x7b-instruct-v0.1"),
    Candidate("small", 0.2, 0.2, "mistral-7b-chat"),
    Candidate("yi", 0.8, 0.8, "yi-34b-chat"),
    Candidate("gpt35", 1.0, 2.0, "gpt-3.5-turbo-1106"),
)


def time_decisions(router: AutoRouter, prompts: Sequence[str], calls: int,
                   candidates: Sequence[Candidate], cpu: bool = False) -> np.ndarray:
    """Per-call wall time, or with ``cpu`` the thread's CPU time (which a loaded machine
    inflates less: it leaves out the time spent waiting for a core)."""
    policy = Policy(willingness_to_pay=0.02)
    for prompt in prompts[:50]:
        router.choose(prompt, candidates, policy)  # warm caches
    rng = random.Random(0)
    order = [rng.randrange(len(prompts)) for _ in range(calls)]
    out = np.empty(calls)
    clock = time.thread_time_ns if cpu else time.perf_counter_ns
    for k, i in enumerate(order):
        prompt = prompts[i]
        start = clock()
        router.choose(prompt, candidates, policy)
        out[k] = clock() - start
    return out / 1e3  # microseconds


def encoder_probe(tokens: int, runs: int = 20) -> np.ndarray:
    rng = np.random.default_rng(0)
    width, ffn, layers = 384, 1536, 6
    weights = [(rng.standard_normal((width, 3 * width), dtype=np.float32) * 0.02,
                rng.standard_normal((width, width), dtype=np.float32) * 0.02,
                rng.standard_normal((width, ffn), dtype=np.float32) * 0.02,
                rng.standard_normal((ffn, width), dtype=np.float32) * 0.02)
               for _ in range(layers)]
    x0 = rng.standard_normal((tokens, width), dtype=np.float32)
    heads, dim = 12, width // 12
    out = np.empty(runs)
    for r in range(runs):
        start = time.perf_counter_ns()
        x = x0
        for qkv_w, o_w, up_w, down_w in weights:
            qkv = (x @ qkv_w).reshape(tokens, 3, heads, dim).transpose(1, 2, 0, 3)
            att = qkv[0] @ qkv[1].transpose(0, 2, 1) / np.sqrt(dim)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ qkv[2]).transpose(1, 0, 2).reshape(tokens, width)
            x = _layer_norm(x + ctx @ o_w)
            h = x @ up_w
            x = _layer_norm(x + (h * (1 / (1 + np.exp(-1.702 * h)))) @ down_w)
        x.mean(axis=0)
        out[r] = time.perf_counter_ns() - start
    return out / 1e6  # milliseconds


def _layer_norm(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=-1, keepdims=True)
    out: np.ndarray = centred / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + 1e-12)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polyroute.autorouter.bench")
    parser.add_argument("--artifact", default=str(DEFAULT_ARTIFACT))
    parser.add_argument("--data", help="routing data to draw prompts from")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--encoder-probe", action="store_true")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time each call's CPU time instead of wall time")
    ns = parser.parse_args(argv)
    for path in (ns.data, ns.artifact):
        if path and not Path(path).exists():
            print(f"router bench: no such file or directory: {path}", file=sys.stderr)
            return 2

    started = time.perf_counter()
    router = AutoRouter.load(ns.artifact)
    load_ms = (time.perf_counter() - started) * 1e3
    prompts = list(_SAMPLES)
    if ns.data:
        from polyroute.autorouter.readers import load_routing_data

        for table in load_routing_data(ns.data):
            prompts += table.prompts
    lengths = np.array([len(p) for p in prompts])
    print(f"artifact load: {load_ms:.0f} ms; {len(prompts)} prompts, chars p50 "
          f"{np.percentile(lengths, 50):.0f} max {lengths.max()}")
    gc.collect()
    for count in (2, 5):
        t = time_decisions(router, prompts, ns.calls, CANDIDATES[:count], ns.cpu_time)
        p50, p90, p99, p999 = np.percentile(t, [50, 90, 99, 99.9])
        what = "CPU time" if ns.cpu_time else "wall time"
        print(f"choose() with {count} candidates, {ns.calls} calls, {what}: p50 {p50:.0f} µs, "
              f"p90 {p90:.0f} µs, p99 {p99:.0f} µs, p99.9 {p999:.0f} µs, max {t.max():.0f} µs")
    if ns.encoder_probe:
        for tokens in (32, 128, 512):
            t = encoder_probe(tokens)
            print(f"MiniLM-L6-shaped encoder, numpy, {tokens} tokens: p50 "
                  f"{np.percentile(t, 50):.1f} ms, min {t.min():.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
