"""What the stores need of a database, whichever it is. The two implementations
(:mod:`.sqlite`, :mod:`.postgres`) only connect and move rows; all SQL is in :mod:`.sql`."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from polyroute.storage.sql import BulkInsert

Row = tuple[Any, ...]


class StoreUnavailable(Exception):
    """The database cannot be reached or answered with an error; the caller decides whether
    that matters (the ledger retries later, auth answers from its cache)."""


class RowsRejected(StoreUnavailable):
    """The database answered and refused the data itself (a NUL byte in a text column, an
    integer beyond BIGINT, a violated constraint): sending the same rows again can never
    succeed. A subclass of StoreUnavailable, so callers that only know that one still stop;
    the ledger tells them apart and quarantines the offending rows."""


class Database(Protocol):
    dialect: str

    async def start(self) -> None:
        """Connect and create the tables; may be called again after StoreUnavailable."""
        ...

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    async def insert_rows(self, insert: BulkInsert, rows: Sequence[Sequence[Any]]) -> None:
        """All ``rows`` in one transaction, as few statements as the database likes."""
        ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    def transaction(self) -> AbstractAsyncContextManager[Database]:
        """A connection inside one transaction, committed when the block ends."""
        ...

    async def close(self) -> None: ...
