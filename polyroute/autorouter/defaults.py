"""Where the shipped router artifact lives: a module of its own so that the CLI's flags can
name it without importing the router (and numpy with it)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_ARTIFACT = Path(__file__).parent / "data" / "router.npz"
