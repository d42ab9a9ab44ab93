"""Per-deployment limits: the vendor's quota for a deployment (``rpm``/``tpm`` in config),
enforced like a key's limits. The engine asks a :class:`QuotaGate` before each attempt on a
deployment that has one; the policy's implementation counts in the same limiter as the keys
(in process, or exact across replicas in Redis)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from polyroute.config import Deployment


class QuotaGate(Protocol):
    async def take(self, deployment: Deployment, tokens: int) -> float | None:
        """Count one request of ``tokens`` against the deployment's quota: None when it fits,
        else the seconds until it would (inf: never, the request alone is larger)."""
        ...


@dataclass(frozen=True, slots=True)
class QuotaCheck:
    """One request's use of the gate: its token estimate, and how long it may queue."""

    gate: QuotaGate
    tokens: int
    queue_s: float

    async def admit(self, deployment: Deployment) -> float | None:
        if deployment.rpm is None and deployment.tpm is None:
            return None
        return await self.gate.take(deployment, self.tokens)
