"""The client's ``Cache-Control`` request header, as far as a response cache reads it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CacheControl:
    no_store: bool = False
    """Neither served from the cache nor stored in it."""
    no_cache: bool = False
    """Not served from the cache (a fresh answer is asked for), but stored."""
    max_age_s: float | None = None
    """Served only if stored at most this long ago; 0 is no-cache."""
    opt_in: bool = False
    """``x-polyroute-cache: on``: cache this request although it is not deterministic."""


NO_CONTROL = CacheControl()


def parse(cache_control: str | None, opt_in: str | None = None) -> CacheControl:
    """Directives are case-insensitive and comma-separated (RFC 9111 §5.2); unknown ones and
    malformed ages are ignored, as caches must."""
    wants = (opt_in or "").strip().lower() in ("on", "1", "true", "yes")
    if not cache_control:
        return CacheControl(opt_in=True) if wants else NO_CONTROL
    no_store = no_cache = False
    max_age: float | None = None
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        name = name.strip().lower()
        if name == "no-store":
            no_store = True
        elif name == "no-cache":
            no_cache = True
        elif name == "max-age":
            try:
                max_age = max(0.0, float(int(value.strip().strip('"'))))
            except ValueError:
                continue
    if max_age == 0:
        no_cache = True
    return CacheControl(no_store, no_cache, max_age, wants)
