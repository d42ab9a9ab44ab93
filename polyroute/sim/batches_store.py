"""What the simulator's Files and Batch APIs hold (:mod:`.batches`): kept on the app's state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SimFile:
    obj: dict[str, Any]
    content: bytes


@dataclass
class SimBatch:
    obj: dict[str, Any]
    ready_at: float
    """When an in-progress batch completes."""
    requests: list[Any] = field(default_factory=list)
    """Anthropic's: the batch's requests (OpenAI's are in its input file)."""
    results: bytes = b""
    """Anthropic's: the results file, once the batch ended."""


@dataclass
class BatchStore:
    files: dict[str, SimFile] = field(default_factory=dict)
    batches: dict[str, SimBatch] = field(default_factory=dict)
    message_batches: dict[str, SimBatch] = field(default_factory=dict)
    """Anthropic's Message Batches."""
