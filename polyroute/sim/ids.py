"""Deterministic identifiers, so two runs with the same seed produce the same ids."""

from __future__ import annotations

import hashlib
import itertools

SYSTEM_FINGERPRINT = "fp_sim0000001"


class IdSource:
    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._counter = itertools.count(1)

    def _token(self, kind: str, length: int) -> str:
        digest = hashlib.blake2b(f"{self._seed}:{kind}:{next(self._counter)}".encode())
        return digest.hexdigest()[:length]

    def completion_id(self) -> str:
        return f"chatcmpl-{self._token('chatcmpl', 29)}"

    def tool_call_id(self) -> str:
        return f"call_{self._token('call', 24)}"

    def response_id(self) -> str:
        return f"resp_{self._token('resp', 32)}"

    def item_id(self, prefix: str) -> str:
        return f"{prefix}_{self._token(prefix, 32)}"

    def request_id(self) -> str:
        return f"req_{self._token('req', 32)}"
