"""The requests a drill sends: generated round-robin over model groups, or read from a file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROMPTS = (
    "Summarise the plot of Hamlet in two sentences.",
    "Write a haiku about failover.",
    "What is the capital of Australia?",
    "Explain circuit breakers to a five-year-old.",
)


def generated(models: Sequence[str], count: int, stream: bool) -> list[dict[str, Any]]:
    return [
        {"model": models[i % len(models)], "stream": stream, "max_tokens": 64,
         "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]}
        for i in range(count)
    ]


def from_file(path: Path) -> list[dict[str, Any]]:
    """One OpenAI chat-completions body per line (JSONL)."""
    bodies = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        body = json.loads(line)
        if not isinstance(body, dict) or "model" not in body or "messages" not in body:
            raise ValueError(f"{path}:{number}: each line must be a chat request with "
                             "'model' and 'messages'")
        bodies.append(body)
    return bodies
