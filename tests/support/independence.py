"""A three-vendor config (OpenAI, Anthropic, Google) shared by the vendor-independence tests."""

from __future__ import annotations

from pathlib import Path

THREE_VENDORS = """
providers:
  openai: {base_url: "http://127.0.0.1:9/v1", auth: none}
  anthropic: {protocol: anthropic, base_url: "http://127.0.0.1:9", auth: none}
  google: {protocol: gemini, base_url: "http://127.0.0.1:9", auth: none}
model_groups:
  chat:
    deployments:
      - {provider: openai, model: gpt-4o, cloud: azure, region: eastus}
      - {provider: anthropic, model: claude-sonnet-4-5, cloud: aws, region: us-east-1}
      - {provider: google, model: gemini-2.5-flash, cloud: gcp, region: us-central1}
  structured:
    deployments:
      - {provider: openai, model: gpt-4o-mini, cloud: azure, region: eastus}
      - {provider: anthropic, model: claude-haiku-4-5, cloud: aws, region: us-east-1}
  solo:
    deployments:
      - {provider: openai, model: gpt-5, cloud: azure, region: eastus}
      - {provider: anthropic, model: claude-3-5-haiku, equivalent: false,
         capabilities: {vision: false}}
"""


def write_config(directory: Path, extra: str = "") -> Path:
    path = directory / "polyroute.yaml"
    path.write_text(THREE_VENDORS + extra, encoding="utf-8")
    return path
