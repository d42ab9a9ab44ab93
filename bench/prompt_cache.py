"""The vendor prompt-cache saving of prompt-cache-aware routing, against plain weighted routing.

    python bench/prompt_cache.py [--requests 600] [--documents 100] [--deployments 3]

A group of ``--deployments`` equally weighted deployments (one simulator; each deployment its
own model name, so its own prompt cache, as separate vendor deployments have). The workload:
each request asks a new question about one of ``--documents`` long documents (a ~1,500-token
system prompt), the document drawn with Zipf-like weights (a few are popular), seeded. The
simulator reports cached prompt tokens as OpenAI does (``prompt_tokens_details.
cached_tokens``, prefixes of 1,024+ tokens at message boundaries). Run twice, each on a cold
simulator: ``prompt_affinity: false`` (plain weighted) and ``true`` (the default).
Reported: the share of prompt tokens read from cache, each deployment's share of requests,
and the input bill at OpenAI's discount (cached input at 50 %) and Anthropic's (10 %).
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections import Counter
from typing import Any

import aiohttp
from cache_common import post, sim_and_gateway

_TEXT = ("ledger tariff clause invoice shipment warranty liability arbitration "
         "jurisdiction amendment schedule annex payment delivery notice term")
WORDS = _TEXT.split(" ")


def document(i: int, words: int = 1500) -> str:
    rng = random.Random(i)
    return f"Document {i}. " + " ".join(rng.choice(WORDS) for _ in range(words))


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(42)
    docs = [document(i) for i in range(args.documents)]
    weights = [1 / (i + 1) for i in range(args.documents)]
    prompt = cached = 0
    by_model: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = [rng.choices(range(args.documents), weights)[0] for _ in range(args.requests)]

        async def worker() -> None:
            nonlocal prompt, cached
            while queue:
                doc = queue.pop()
                body = {"model": "docs", "max_tokens": 16, "messages": [
                    {"role": "system", "content": docs[doc]},
                    {"role": "user", "content": f"Question {rng.random():.8f}: who pays?"}]}
                answer, _ = await post(session, url, body)
                usage = answer["usage"]
                prompt += usage["prompt_tokens"]
                cached += (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
                by_model[answer["model"]] += 1

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return {"prompt": prompt, "cached": cached, "by_model": by_model}


def bill(prompt: int, cached: int, discount: float) -> float:
    """The input bill relative to no caching at all (1.0)."""
    return (prompt - cached + cached * discount) / prompt


async def main_async(args: argparse.Namespace) -> None:
    print("| routing | cached share of prompt tokens | requests per deployment | "
          "input bill, OpenAI (cached 50 %) | input bill, Anthropic (cached 10 %) |")
    print("|---|---|---|---|---|")
    results = {}
    for affinity in (False, True):
        groups = {"docs": {"routing": "weighted", "prompt_affinity": affinity, "deployments": [
            {"provider": "sim", "model": f"doc-model-{chr(97 + i)}", "name": f"d{i}"}
            for i in range(args.deployments)]}}
        with sim_and_gateway(f"prompt-{affinity}", groups) as (_, _, base):
            r = await run(base + "/chat/completions", args)
        results[affinity] = r
        shares = ", ".join(f"{n / args.requests:.0%}" for _, n in sorted(r["by_model"].items()))
        print(f"| {'prefix-affine' if affinity else 'weighted'} | "
              f"{r['cached'] / r['prompt']:.1%} | {shares} | "
              f"{bill(r['prompt'], r['cached'], 0.5):.1%} | "
              f"{bill(r['prompt'], r['cached'], 0.1):.1%} |")
    plain, affine = results[False], results[True]
    for name, discount in (("OpenAI", 0.5), ("Anthropic", 0.1)):
        saved = 1 - bill(affine["prompt"], affine["cached"], discount) / bill(
            plain["prompt"], plain["cached"], discount)
        print(f"\nInput bill with prefix affinity vs weighted, {name}'s discount: "
              f"{saved:.1%} lower.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--documents", type=int, default=100)
    parser.add_argument("--deployments", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
