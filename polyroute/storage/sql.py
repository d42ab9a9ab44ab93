"""The SQL polyroute runs, in one place."""

from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------------------------------------
# Keys, teams, organisations and the spend ledger. Every statement below runs unchanged on
# SQLite and PostgreSQL: '?' placeholders (postgres.py numbers them), TEXT / BIGINT / INTEGER /
# DOUBLE PRECISION columns, ON CONFLICT upserts, UPDATE … RETURNING, no dialect functions
# (days are computed in Python and stored as text, flags are 0/1 integers).

SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS revision (
        id INTEGER PRIMARY KEY,
        n  BIGINT NOT NULL
    )""",
    "INSERT INTO revision (id, n) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
    """CREATE TABLE IF NOT EXISTS orgs (
        id         TEXT PRIMARY KEY,
        settings   TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        deleted    INTEGER NOT NULL,
        version    BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS teams (
        id         TEXT PRIMARY KEY,
        org        TEXT,
        settings   TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        deleted    INTEGER NOT NULL,
        version    BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS api_keys (
        id         TEXT PRIMARY KEY,
        salt       TEXT NOT NULL,
        hash       TEXT NOT NULL,
        name       TEXT,
        team       TEXT,
        settings   TEXT NOT NULL,
        expires_at DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL,
        revoked    INTEGER NOT NULL,
        version    BIGINT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS orgs_version ON orgs (version)",
    "CREATE INDEX IF NOT EXISTS teams_version ON teams (version)",
    "CREATE INDEX IF NOT EXISTS api_keys_version ON api_keys (version)",
    """CREATE TABLE IF NOT EXISTS ledger (
        entry_id           TEXT PRIMARY KEY,
        request_id         TEXT NOT NULL,
        ts                 DOUBLE PRECISION NOT NULL,
        day                TEXT NOT NULL,
        key_id             TEXT,
        team               TEXT,
        org                TEXT,
        endpoint           TEXT NOT NULL,
        requested_model    TEXT NOT NULL,
        model_group        TEXT,
        vendor             TEXT,
        deployment         TEXT,
        upstream_model     TEXT,
        status             INTEGER NOT NULL,
        error_class        TEXT,
        prompt_tokens      BIGINT NOT NULL,
        completion_tokens  BIGINT NOT NULL,
        cached_tokens      BIGINT NOT NULL,
        cache_write_tokens BIGINT NOT NULL,
        reasoning_tokens   BIGINT NOT NULL,
        cost_usd           DOUBLE PRECISION,
        priced             INTEGER NOT NULL,
        price_source       TEXT,
        latency_ms         DOUBLE PRECISION NOT NULL,
        attempts           TEXT NOT NULL,
        usage_estimated    INTEGER NOT NULL DEFAULT 0,
        client_request_id  TEXT,
        stream             INTEGER NOT NULL DEFAULT 0,
        ttft_ms            DOUBLE PRECISION,
        route              TEXT,
        cache              TEXT,
        saved_usd          DOUBLE PRECISION,
        features           TEXT,
        governance         TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS ledger_ts ON ledger (ts)",
    "CREATE INDEX IF NOT EXISTS ledger_key ON ledger (key_id, ts)",
    "CREATE INDEX IF NOT EXISTS ledger_team ON ledger (team, ts)",
    "CREATE INDEX IF NOT EXISTS ledger_org ON ledger (org, ts)",
    "CREATE INDEX IF NOT EXISTS ledger_request ON ledger (request_id)",
    # Issue 11: admin keys with roles, and the hash-chained audit log (see the end of file).
    """CREATE TABLE IF NOT EXISTS admin_keys (
        id         TEXT PRIMARY KEY,
        salt       TEXT NOT NULL,
        hash       TEXT NOT NULL,
        name       TEXT,
        role       TEXT NOT NULL,
        teams      TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        revoked    INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS audit_log (
        seq       BIGINT PRIMARY KEY,
        entry_id  TEXT NOT NULL UNIQUE,
        ts        DOUBLE PRECISION NOT NULL,
        actor     TEXT NOT NULL,
        action    TEXT NOT NULL,
        target    TEXT,
        outcome   TEXT NOT NULL,
        detail    TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash      TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log (ts)",
    """CREATE TABLE IF NOT EXISTS audit_head (
        id   INTEGER PRIMARY KEY,
        seq  BIGINT NOT NULL,
        hash TEXT NOT NULL
    )""",
    "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '" + "0" * 64
    + "') ON CONFLICT (id) DO NOTHING",
    # Issue 16: files and batches a key owns (polyroute's id → the upstream's, and where), and
    # the conversations of stateful Responses (see the end of file).
    """CREATE TABLE IF NOT EXISTS owned_objects (
        id          TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        owner       TEXT NOT NULL,
        upstream_id TEXT NOT NULL,
        deployment  TEXT NOT NULL,
        created_at  DOUBLE PRECISION NOT NULL,
        object      TEXT NOT NULL,
        detail      TEXT NOT NULL,
        settled     INTEGER NOT NULL,
        deleted     INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS owned_objects_owner ON owned_objects (owner, kind, created_at)",
    "CREATE UNIQUE INDEX IF NOT EXISTS owned_objects_upstream "
    "ON owned_objects (deployment, upstream_id, kind)",
    """CREATE TABLE IF NOT EXISTS stored_responses (
        id         TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        history    TEXT NOT NULL,
        body       TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS stored_responses_expiry ON stored_responses (expires_at)",
)

LEDGER_COLUMNS = (
    "entry_id", "request_id", "ts", "day", "key_id", "team", "org", "endpoint",
    "requested_model", "model_group", "vendor", "deployment", "upstream_model", "status",
    "error_class", "prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens",
    "reasoning_tokens", "cost_usd", "priced", "price_source", "latency_ms", "attempts",
    "usage_estimated", "client_request_id", "stream", "ttft_ms", "route", "cache", "saved_usd",
    "features",
    "governance",
    "prompt",
)

ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("ledger", "usage_estimated", "INTEGER NOT NULL DEFAULT 0"),
    ("ledger", "client_request_id", "TEXT"),
    # The ledger became the request log (issue 12): what only the request_log table had.
    ("ledger", "stream", "INTEGER NOT NULL DEFAULT 0"),
    ("ledger", "ttft_ms", "DOUBLE PRECISION"),
    ("ledger", "route", "TEXT"),
    # The response cache (issue 15): hits cost $0 and record what they saved.
    ("ledger", "cache", "TEXT"),
    ("ledger", "saved_usd", "DOUBLE PRECISION"),
    # Vendor independence (issue 14): which capabilities a request used.
    ("ledger", "features", "TEXT"),
    ("ledger", "governance", "TEXT"),  # issue 11
    # Learning from traffic (issue 17): what the router read of the prompt, stored only with
    # the caller's consent (retain_bodies), and the quality label POST /v1/feedback gave it.
    ("ledger", "prompt", "TEXT"),
    ("ledger", "feedback_score", "DOUBLE PRECISION"),
    ("ledger", "feedback_kind", "TEXT"),
    ("ledger", "feedback_ts", "DOUBLE PRECISION"),
)
"""(table, column, type) added after a table was first created: each backend adds the ones a
database made by an older version lacks (SQLite has no ADD COLUMN IF NOT EXISTS)."""

ADDED_INDEXES: tuple[str, ...] = (
    "CREATE INDEX IF NOT EXISTS ledger_client_request ON ledger (client_request_id)",
)
"""Indexes on ``ADDED_COLUMNS``, created once those columns exist."""



@dataclass(frozen=True, slots=True)
class BulkInsert:
    """An INSERT that may carry many rows in one statement: ``head`` + ``row`` × n + ``tail``.

    SQLite runs each statement with the GIL released, but takes it back between statements,
    so ``executemany`` (one statement per row) makes its thread wait for the event loop's
    thread once a row, which at saturation left the ledger half behind. Many rows a statement
    make that one wait a batch (``SqliteDatabase.insert_rows``)."""

    head: str
    row: str
    tail: str

    def statement(self, rows: int) -> str:
        return f"{self.head}{', '.join([self.row] * rows)}{self.tail}"


# Idempotent on entry_id: a batch flushed again after a crash (before the spool was
# truncated) inserts nothing twice.
LEDGER_INSERT = BulkInsert(
    head=f"INSERT INTO ledger ({', '.join(LEDGER_COLUMNS)}) VALUES ",
    row=f"({', '.join('?' for _ in LEDGER_COLUMNS)})",
    tail=" ON CONFLICT (entry_id) DO NOTHING",
)
INSERT_LEDGER = LEDGER_INSERT.statement(1)

BUMP_REVISION = "UPDATE revision SET n = n + 1 WHERE id = 1 RETURNING n"
CURRENT_REVISION = "SELECT n FROM revision WHERE id = 1"

UPSERT_ORG = """
INSERT INTO orgs (id, settings, created_at, deleted, version) VALUES (?, ?, ?, 0, ?)
ON CONFLICT (id) DO UPDATE SET settings = excluded.settings, deleted = 0,
    version = excluded.version
"""
UPSERT_TEAM = """
INSERT INTO teams (id, org, settings, created_at, deleted, version) VALUES (?, ?, ?, ?, 0, ?)
ON CONFLICT (id) DO UPDATE SET org = excluded.org, settings = excluded.settings, deleted = 0,
    version = excluded.version
"""
INSERT_KEY = """
INSERT INTO api_keys (id, salt, hash, name, team, settings, expires_at, created_at, revoked,
    version)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)
"""
UPDATE_KEY = """
UPDATE api_keys SET name = ?, team = ?, settings = ?, expires_at = ?, version = ? WHERE id = ?
"""
REVOKE_KEY = "UPDATE api_keys SET revoked = 1, version = ? WHERE id = ? AND revoked = 0"
DELETE_TEAM = "UPDATE teams SET deleted = 1, version = ? WHERE id = ? AND deleted = 0"
DELETE_ORG = "UPDATE orgs SET deleted = 1, version = ? WHERE id = ? AND deleted = 0"
# Deleting a team revokes its keys, deleting an organisation deletes its teams (and so revokes
# their keys), in the same transaction: a key must never outlive the limits it was given under.
REVOKE_TEAM_KEYS = (
    "UPDATE api_keys SET revoked = 1, version = ? WHERE team = ? AND revoked = 0 RETURNING id")
DELETE_ORG_TEAMS = (
    "UPDATE teams SET deleted = 1, version = ? WHERE org = ? AND deleted = 0 RETURNING id")

SELECT_ORGS = "SELECT id, settings, created_at, deleted, version FROM orgs WHERE version > ?"
SELECT_TEAMS = (
    "SELECT id, org, settings, created_at, deleted, version FROM teams WHERE version > ?")
SELECT_KEYS = (
    "SELECT id, salt, hash, name, team, settings, expires_at, created_at, revoked, version "
    "FROM api_keys WHERE version > ?")
SELECT_KEY = (
    "SELECT id, salt, hash, name, team, settings, expires_at, created_at, revoked, version "
    "FROM api_keys WHERE id = ?")

# Spend so far per scope, for seeding the budget counters: today, this month, all time.
_SPEND = """
SELECT {column},
       SUM(CASE WHEN ts >= ? THEN cost_usd ELSE 0 END),
       SUM(CASE WHEN ts >= ? THEN cost_usd ELSE 0 END),
       SUM(cost_usd)
FROM ledger WHERE {column} IS NOT NULL AND cost_usd IS NOT NULL GROUP BY {column}
"""
SPEND_BY_KEY = _SPEND.format(column="key_id")
SPEND_BY_TEAM = _SPEND.format(column="team")
SPEND_BY_ORG = _SPEND.format(column="org")

# Usage report dimensions: API name → column. Only these names ever reach the SQL text.
USAGE_DIMENSIONS = {
    "key": "key_id", "team": "team", "org": "org", "vendor": "vendor",
    "model": "model_group", "upstream_model": "upstream_model", "deployment": "deployment",
    "day": "day", "status": "status",
}
USAGE_FILTERS = {"key": "key_id", "team": "team", "org": "org", "vendor": "vendor",
                 "model": "model_group"}


def usage_query(by: tuple[str, ...], filters: tuple[str, ...]) -> str:
    """Totals per combination of ``by`` between two times; names were checked by the caller
    against USAGE_DIMENSIONS / USAGE_FILTERS."""
    columns = [USAGE_DIMENSIONS[b] for b in by]
    where = ["ts >= ?", "ts < ?", *(f"{USAGE_FILTERS[f]} = ?" for f in filters)]
    group = ", ".join(columns)
    return (
        f"SELECT {group}, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), "
        "SUM(cached_tokens), SUM(reasoning_tokens), SUM(cost_usd), "
        "SUM(CASE WHEN priced = 0 THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN cache IN ('hit', 'semantic') THEN 1 ELSE 0 END), SUM(saved_usd) "
        f"FROM ledger WHERE {' AND '.join(where)} GROUP BY {group} ORDER BY {group}"
    )


# Feedback (issue 17): a key labels only its own requests; the newest label wins. The key
# test is in the statement, so no other key's row can be touched or even confirmed to exist.
LABEL_REQUEST = (
    "UPDATE ledger SET feedback_score = ?, feedback_kind = ?, feedback_ts = ? "
    "WHERE request_id = ? AND key_id = ? RETURNING entry_id")
LABEL_ANONYMOUS_REQUEST = (
    "UPDATE ledger SET feedback_score = ?, feedback_kind = ?, feedback_ts = ? "
    "WHERE request_id = ? AND key_id IS NULL RETURNING entry_id")
LABELLED_ROWS = (
    "SELECT prompt, model_group, deployment, feedback_score, cost_usd, request_id FROM ledger "
    "WHERE feedback_score IS NOT NULL AND prompt IS NOT NULL AND deployment IS NOT NULL "
    "AND status < 400 AND ts >= ? AND ts < ? ORDER BY ts")
"""Labelled answers with the prompt the router read: ``router train --from-ledger``."""

LEDGER_BY_REQUEST = (
    f"SELECT {', '.join(LEDGER_COLUMNS)} FROM ledger WHERE request_id = ? "
    "OR client_request_id = ? ORDER BY ts")


# -- the console's reads (issue 13) --------------------------------------------------------
REQUEST_FILTERS = {
    "key": "key_id", "team": "team", "org": "org", "model": "model_group", "vendor": "vendor",
    "deployment": "deployment", "status": "status", "error_class": "error_class",
    "request_id": "request_id",
}
"""Filters of the recent-requests search: query parameter → ledger column."""


def recent_requests_query(filters: tuple[str, ...]) -> str:
    """The newest ledger rows between two times matching ``filters`` (names checked against
    REQUEST_FILTERS by the caller), at most ``?`` of them."""
    where = ["ts >= ?", "ts < ?", *(f"{REQUEST_FILTERS[f]} = ?" for f in filters)]
    return (f"SELECT {', '.join(LEDGER_COLUMNS)} FROM ledger WHERE {' AND '.join(where)} "
            "ORDER BY ts DESC LIMIT ?")


_LIVE_COLUMNS = "ts, status, error_class, latency_ms, ttft_ms, model_group, team, vendor, cost_usd"
LIVE_SAMPLE = f"SELECT {_LIVE_COLUMNS} FROM ledger WHERE ts >= ? ORDER BY ts DESC LIMIT ?"
"""The last requests, for the console's live figures (percentiles are taken in Python: one
query that works alike on SQLite and PostgreSQL)."""
LIVE_SAMPLE_TEAM = (f"SELECT {_LIVE_COLUMNS} FROM ledger WHERE ts >= ? AND team = ? "
                    "ORDER BY ts DESC LIMIT ?")
"""The same for one team (a team admin's console)."""

VENDOR_SERIES = (
    "SELECT CAST(ts / ? AS BIGINT), vendor, COUNT(*), SUM(cost_usd), "
    "AVG(CASE WHEN status < 400 THEN latency_ms END) FROM ledger "
    "WHERE ts >= ? AND ts < ? AND vendor IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2")
"""Requests, spend and mean latency of the answered requests per vendor and time bucket
(``ts / bucket_s``)."""


# Vendor independence (issue 14): the ledger's answered traffic, summed per day, group, team,
# organisation, deployment and the capabilities it used. Failed requests are left out: they
# show where traffic *went*, not what a vendor served.
INDEPENDENCE_TRAFFIC = (
    "SELECT day, model_group, team, org, vendor, deployment, features, COUNT(*), "
    "SUM(prompt_tokens + completion_tokens), SUM(COALESCE(cost_usd, 0)) "
    "FROM ledger WHERE ts >= ? AND ts < ? AND status < 400 AND vendor IS NOT NULL "
    "GROUP BY day, model_group, team, org, vendor, deployment, features "
    "ORDER BY day, model_group, team, org, vendor, deployment, features")
# The shape of each answered request (no bodies: polyroute stores none), for an exit drill.
REPLAY_SHAPES = (
    "SELECT ts, endpoint, model_group, requested_model, team, vendor, deployment, stream, "
    "features, prompt_tokens, completion_tokens, latency_ms, cost_usd FROM ledger "
    "WHERE ts >= ? AND ts < ? AND status < 400 AND vendor IS NOT NULL ORDER BY ts")


# ---------------------------------------------------------------------------------------------
# Admin keys (issue 11): the master key only bootstraps; these carry a role.
INSERT_ADMIN_KEY = """
INSERT INTO admin_keys (id, salt, hash, name, role, teams, created_at, revoked)
VALUES (?, ?, ?, ?, ?, ?, ?, 0)
"""
SELECT_ADMIN_KEYS = (
    "SELECT id, salt, hash, name, role, teams, created_at, revoked FROM admin_keys ORDER BY "
    "created_at")
SELECT_ADMIN_KEY = (
    "SELECT id, salt, hash, name, role, teams, created_at, revoked FROM admin_keys "
    "WHERE id = ?")
REVOKE_ADMIN_KEY = "UPDATE admin_keys SET revoked = 1 WHERE id = ? AND revoked = 0"

# The audit log: one chain. Appending locks the head row first (an UPDATE that changes
# nothing takes PostgreSQL's row lock, and SQLite's write lock), so replicas append in turn
# and every entry's prev_hash is the hash of the entry before it.
AUDIT_COLUMNS = ("seq", "entry_id", "ts", "actor", "action", "target", "outcome", "detail",
                 "prev_hash", "hash")
LOCK_AUDIT_HEAD = "UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash"
SET_AUDIT_HEAD = "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1"
SELECT_AUDIT_HEAD = "SELECT seq, hash FROM audit_head WHERE id = 1"
AUDIT_ENTRY_EXISTS = "SELECT 1 FROM audit_log WHERE entry_id = ?"
INSERT_AUDIT = (
    f"INSERT INTO audit_log ({', '.join(AUDIT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in AUDIT_COLUMNS)})")
SELECT_AUDIT_CHAIN = (
    f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?")
AUDIT_FILTERS = {"actor": "actor", "action": "action", "target": "target",
                 "outcome": "outcome"}


def audit_query(filters: tuple[str, ...]) -> str:
    """Entries between two times, newest first; names were checked against AUDIT_FILTERS."""
    where = ["ts >= ?", "ts < ?", *(f"{AUDIT_FILTERS[f]} = ?" for f in filters)]
    return (f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_log WHERE {' AND '.join(where)} "
            "ORDER BY seq DESC LIMIT ?")


# ---------------------------------------------------------------------------------------------
# Files and batches (issue 16): which key owns which, the upstream's id and the deployment that
# holds it. ``object`` is the last object the client was shown (JSON, polyroute's ids),
# ``detail`` what polyroute keeps beside it (JSON: a batch file's worst case, a batch's
# reservation); ``settled`` flips once, so one replica alone settles a batch in the ledger.
OWNED_COLUMNS = ("id", "kind", "owner", "upstream_id", "deployment", "created_at", "object",
                 "detail", "settled", "deleted")
INSERT_OWNED = (
    f"INSERT INTO owned_objects ({', '.join(OWNED_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in OWNED_COLUMNS)})")
# A batch's output file, adopted by whichever request or replica sees the batch end first.
INSERT_OWNED_ONCE = INSERT_OWNED + " ON CONFLICT (deployment, upstream_id, kind) DO NOTHING"
SELECT_OWNED = (
    f"SELECT {', '.join(OWNED_COLUMNS)} FROM owned_objects "
    "WHERE id = ? AND owner = ? AND kind = ? AND deleted = 0")
SELECT_OWNED_BY_UPSTREAM = (
    f"SELECT {', '.join(OWNED_COLUMNS)} FROM owned_objects "
    "WHERE upstream_id = ? AND deployment = ? AND kind = ? AND deleted = 0")
LIST_OWNED = (
    f"SELECT {', '.join(OWNED_COLUMNS)} FROM owned_objects "
    "WHERE owner = ? AND kind = ? AND deleted = 0 ORDER BY created_at DESC, id DESC LIMIT ?")
UNSETTLED_OWNED = (
    f"SELECT {', '.join(OWNED_COLUMNS)} FROM owned_objects "
    "WHERE kind = ? AND settled = 0 AND deleted = 0 ORDER BY created_at LIMIT ?")
UPDATE_OWNED_OBJECT = "UPDATE owned_objects SET object = ? WHERE id = ?"
SETTLE_OWNED = (
    "UPDATE owned_objects SET settled = 1, object = ? WHERE id = ? AND settled = 0 RETURNING id")
DELETE_OWNED = "UPDATE owned_objects SET deleted = 1 WHERE id = ? AND owner = ? AND deleted = 0"

# Stateful Responses: a stored response's whole conversation (canonical messages, JSON) and
# the response object GET /v1/responses/{id} answers; read only until ``expires_at``.
INSERT_RESPONSE = (
    "INSERT INTO stored_responses (id, owner, created_at, expires_at, history, body) "
    "VALUES (?, ?, ?, ?, ?, ?)")
SELECT_RESPONSE = (
    "SELECT history, body FROM stored_responses WHERE id = ? AND owner = ? AND expires_at > ?")
DELETE_RESPONSE = (
    "DELETE FROM stored_responses WHERE id = ? AND owner = ? AND expires_at > ? RETURNING id")
PURGE_RESPONSES = "DELETE FROM stored_responses WHERE expires_at <= ?"
