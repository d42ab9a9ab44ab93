"""Organisations, teams and keys as the admin API and the key store see them.

Settings are one struct for all three scopes (a field that does not apply is simply unset):
the same limits exist at every level, and a request must pass all of them.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from polyroute.model.governance import DataPolicy
from polyroute.model.mcp import SERVER_NAME

# Every number an operator can set is bounded: a value the limiter cannot hold exactly (a
# budget of 1e300 overflowed the directory rebuild, issue 10 item 7) is refused with a 400
# naming the field, never stored. The bounds sit far above any real use.
MAX_BUDGET_USD = 1_000_000.0
"""Per budget. Budgets are counted in nano-USD by Redis's Lua, whose numbers are doubles:
exact up to 2**53 nano-USD (about $9M), so a budget and what is spent against it stay below."""
MAX_RPM = 1_000_000_000
MAX_TPM = 1_000_000_000_000
MAX_CONCURRENT = 1_000_000
MAX_UNIX_TIME = 32_503_680_000.0  # the year 3000
MAX_DURATION_S = 100 * 366 * 86400.0

Rpm = Annotated[int, Meta(gt=0, le=MAX_RPM)]
Tpm = Annotated[int, Meta(gt=0, le=MAX_TPM)]
Concurrency = Annotated[int, Meta(gt=0, le=MAX_CONCURRENT)]
Usd = Annotated[float, Meta(ge=0, le=MAX_BUDGET_USD)]
Name = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")]
ModelGroupName = Annotated[str, Meta(min_length=1, max_length=256)]
TagKey = Annotated[str, Meta(max_length=64)]
TagValue = Annotated[str, Meta(max_length=256)]
UnixTime = Annotated[float, Meta(ge=0, le=MAX_UNIX_TIME)]
McpServerName = Annotated[str, Meta(min_length=1, max_length=64, pattern=SERVER_NAME)]
McpToolName = Annotated[str, Meta(min_length=4, max_length=256, pattern=r"^[^_]+.*__.+$")]


class Settings(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    models: Annotated[list[ModelGroupName], Meta(max_length=1000)] | None = None
    """Model groups this scope may use; unset: all."""
    rpm: Rpm | None = None
    """Requests per minute (any 60-second window)."""
    tpm: Tpm | None = None
    """Tokens per minute: input estimate + max output at admission, actual usage after."""
    max_concurrent: Concurrency | None = None
    daily_budget_usd: Usd | None = None
    """Per UTC day."""
    monthly_budget_usd: Usd | None = None
    """Per UTC calendar month."""
    total_budget_usd: Usd | None = None
    tags: Annotated[dict[TagKey, TagValue], Meta(max_length=64)] = msgspec.field(
        default_factory=dict)
    on_state_outage: Literal["open", "closed"] | None = None
    """Teams: when Redis is unreachable, admit (open) or refuse with 503 (closed); unset: the
    gateway's limits.on_state_outage."""
    governance: DataPolicy | None = None
    """Where this scope's requests may go and what data may go there (docs/governance.md)."""
    mcp_servers: Annotated[list[McpServerName], Meta(max_length=1000)] | None = None
    """MCP servers (``mcp.servers`` names) this scope may use; unset: all (docs/mcp.md)."""
    mcp_tools: Annotated[list[McpToolName], Meta(max_length=10000)] | None = None
    """MCP tools this scope may use, as ``server__tool`` (``server__*``: all of one server's);
    unset: every tool of the servers allowed."""


class OrgIn(Settings, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    id: Name


class OrgView(Settings, kw_only=True, omit_defaults=True):
    id: str
    created_at: float


class TeamIn(Settings, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    id: Name
    org: Name | None = None


class TeamView(Settings, kw_only=True, omit_defaults=True):
    id: str
    created_at: float
    org: str | None = None


class KeyIn(Settings, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(max_length=256)] | None = None
    team: Name | None = None
    expires_at: UnixTime | None = None
    """Unix time after which the key is refused."""
    expires_in_s: Annotated[float, Meta(gt=0, le=MAX_DURATION_S)] | None = None
    """Alternative to expires_at: seconds from now."""


class KeyView(Settings, kw_only=True, omit_defaults=True):
    id: str
    preview: str
    """The key's public prefix, enough to recognise it; never the secret part."""
    created_at: float
    name: str | None = None
    team: str | None = None
    org: str | None = None
    expires_at: float | None = None
    revoked: bool = False


class KeyCreated(KeyView, kw_only=True, omit_defaults=True):
    key: str
    """The key itself. Shown in this response only: polyroute keeps a salted hash."""


SETTINGS_FIELDS = frozenset(Settings.__struct_fields__)


def settings_of(value: Settings) -> Settings:
    """Only the Settings part of an org/team/key struct (what the store keeps as JSON)."""
    return Settings(**{f: getattr(value, f) for f in SETTINGS_FIELDS})
