"""A PostgreSQL database of a test's own on the machine's shared server."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator

import asyncpg  # type: ignore[import-untyped]

SERVER = "postgresql://postgres@127.0.0.1:5432"


@contextlib.contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """Create a database named ``<prefix>_<random>``, yield its URL, drop it afterwards (with
    whatever connections a gateway under test left open)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(f"{SERVER}/test")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f"CREATE DATABASE {name}"))
    try:
        yield f"{SERVER}/{name}"
    finally:
        asyncio.run(run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
