"""A three-vendor config (OpenAI, Anthropic, Google) shared by the vendor-independence tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

THREE_VENDORS = """
providers:
  openai: {base_url: "http://127.0.0.1:9/v1", auth: none}
  anthropic: {protocol: anthropic, base_url: "http://127.0.0.1:9", auth: none}
  google: {protocol: gemini, base_url: "http://127.0.0.1:9", auth: none}
model_groups:
  chat:
    deployments:
      - {provider: openai, model: gpt-4o, cloud: azure, region: eastus, profile: strong}
      - {provider: anthropic, model: claude-sonnet-4-5, cloud: aws, region: us-east-1,
         profile: strong}
      - {provider: google, model: gemini-2.5-flash, cloud: gcp, region: us-central1,
         profile: mid}
  structured:
    deployments:
      - {provider: openai, model: gpt-4o-mini, cloud: azure, region: eastus}
      - {provider: anthropic, model: claude-haiku-4-5, cloud: aws, region: us-east-1}
  solo:
    deployments:
      - {provider: openai, model: gpt-5, cloud: azure, region: eastus, profile: frontier}
      - {provider: anthropic, model: claude-3-5-haiku, equivalent: false, profile: small,
         capabilities: {vision: false}}
"""


def write_config(directory: Path, extra: str = "") -> Path:
    path = directory / "polyroute.yaml"
    path.write_text(THREE_VENDORS + extra, encoding="utf-8")
    return path


DAY1 = 1_796_083_200.0  # 2026-12-01 00:00 UTC
DAY2 = DAY1 + 86_400

# (group, deployment, vendor, team, features, requests, cost each): day 1 and day 2 alike.
TRAFFIC = (
    ("chat", "openai/gpt-4o", "openai", "web", None, 60, 0.01),
    ("chat", "anthropic/claude-sonnet-4-5", "anthropic", "web", None, 30, 0.02),
    ("chat", "google/gemini-2.5-flash", "google", "data", None, 10, 0.001),
    ("structured", "openai/gpt-4o-mini", "openai", "data", "json_schema", 20, 0.005),
    ("solo", "openai/gpt-5", "openai", "web", None, 10, 0.03),
)
"""Per vendor: openai 90, anthropic 30, google 10 requests (of 130) each day."""


def ledger_entries(groups: tuple[str, ...] = ("chat", "structured", "solo"),
                   day1: float = DAY1) -> list[Any]:
    """The recorded traffic as ledger records, half on each of two days: 80 prompt and 20
    completion tokens each, a failed request per group that must not count."""
    from polyroute.storage.ledger import LedgerEntry

    entries = []
    n = 0
    for group, deployment, vendor, team, features, requests, cost in TRAFFIC:
        if group not in groups:
            continue
        for i in range(requests * 2):
            day = day1 if i % 2 == 0 else day1 + 86_400
            n += 1
            entries.append(LedgerEntry(
                f"e{n}", f"r{n}", day + n, time.strftime("%Y-%m-%d", time.gmtime(day)), "k",
                team, "acme", "chat", group, group, vendor, deployment,
                deployment.split("/")[1], 200, None, 80, 20, 0, 0, 0, cost, 1, "config",
                100.0 + 50 * (vendor == "anthropic"), "[]", stream=int(i % 4 == 1),
                features=features))
        n += 1
        entries.append(LedgerEntry(
            f"e{n}", f"r{n}", day1 + n, "2026-12-01", "k", team, "acme", "chat", group, group,
            vendor, deployment, deployment.split("/")[1], 502, "unavailable", 0, 0, 0, 0, 0,
            None, 0, None, 5.0, "[]"))
    return entries


async def record(db: Any, spool_dir: Path, groups: tuple[str, ...] = ("chat", "structured",
                                                                      "solo"),
                 day1: float = DAY1) -> None:
    """Write the traffic through the real LedgerWriter (spool, then batched inserts)."""
    from polyroute.storage.ledger import LedgerWriter
    from polyroute.storage.spool import Spool

    writer = LedgerWriter(Spool(str(spool_dir)), db, interval_s=0.05)
    writer.open()
    await writer.start()
    for entry in ledger_entries(groups, day1):
        writer.append(entry)
    await writer.flush()
    await writer.aclose()
