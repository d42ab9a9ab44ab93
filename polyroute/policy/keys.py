"""Virtual keys: their format, and the salted hash that is all polyroute stores.

``sk-pr-<16 hex id>-<43 url-safe chars>``. The id is public (it names the key in the admin
API, the ledger and logs) and finds the stored record in one dict lookup; the secret part
carries 256 random bits and is checked with HMAC-SHA256 under a per-key random salt. A slow
password hash (scrypt, argon2) protects low-entropy secrets; against 256 random bits it would
only slow every request, so a keyed hash it is (~1 µs).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "sk-pr-"
_ID_LEN = 16
_SECRET_LEN = 43  # token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class NewKey:
    key_id: str
    token: str
    """Shown once, to whoever created the key."""
    salt: str
    hash: str


def new_key(prefix: str = PREFIX) -> NewKey:
    key_id = secrets.token_hex(_ID_LEN // 2)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    return NewKey(key_id, f"{prefix}{key_id}-{secret}", salt.hex(), digest(salt, secret).hex())


def parse(token: str, prefix: str = PREFIX) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key (admin keys have their own ``prefix``), else
    None."""
    if not token.startswith(prefix) or len(token) != len(prefix) + _ID_LEN + 1 + _SECRET_LEN:
        return None
    body = token[len(prefix):]
    if body[_ID_LEN] != "-":
        return None
    return body[:_ID_LEN], body[_ID_LEN + 1:]


def digest(salt: bytes, secret: str) -> bytes:
    return hmac.digest(salt, secret.encode(), hashlib.sha256)


def preview(key_id: str) -> str:
    return f"{PREFIX}{key_id}-…"
