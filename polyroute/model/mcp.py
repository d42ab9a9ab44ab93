"""An upstream MCP server as the engine and the MCP adapter see it (compiled from the config's
``mcp.servers``), and how tool names are namespaced behind polyroute's one ``/mcp`` endpoint.

Every tool is offered as ``<server>__<tool>``: the server's configured name, two underscores,
the tool's own name. Server names are letters, digits and single ``-``/``_`` between them (the
config refuses ``__`` and a trailing separator), so the first ``__`` always ends the server's
name, and the name is also a valid OpenAI function name when the tool's is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from polyroute.model.tools import Tool as ChatTool

SEPARATOR = "__"
SERVER_NAME = r"^[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*$"
FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What OpenAI (and most vendors) accept as a function tool's name."""


@dataclass(frozen=True, slots=True)
class McpServer:
    name: str
    url: str | None = None
    """A streamable HTTP server's endpoint; None: a stdio server (``command``)."""
    headers: dict[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    """A stdio server: the program and its arguments, started by polyroute."""
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout_s: float = 30.0
    """Per tool call (and per listing)."""
    connect_timeout_s: float = 10.0
    """To connect (start the process) and initialise the session."""
    tools_ttl_s: float = 60.0
    """How long a server's tool list is reused before it is asked again."""

    @property
    def kind(self) -> str:
        return "http" if self.url is not None else "stdio"


def namespaced(server: str, tool: str) -> str:
    return f"{server}{SEPARATOR}{tool}"


def split_name(name: str) -> tuple[str, str] | None:
    """(server, tool) of a namespaced name, or None when it has no server part."""
    server, sep, tool = name.partition(SEPARATOR)
    if not sep or not server or not tool:
        return None
    return server, tool


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool of one upstream server, as it listed it (``definition`` is its MCP ``Tool``
    object as JSON, ``name`` the server's own name for it)."""

    server: str
    name: str
    definition: dict[str, Any]

    @property
    def qualified(self) -> str:
        return namespaced(self.server, self.name)

    def listed(self) -> dict[str, Any]:
        """The MCP ``Tool`` polyroute lists: the upstream's, renamed into its namespace."""
        return {**self.definition, "name": self.qualified}

    def function(self) -> ChatTool:
        """The tool as an OpenAI chat function tool (for a model)."""
        schema = self.definition.get("inputSchema") or {"type": "object", "properties": {}}
        return ChatTool.of_function(self.qualified, schema, self.definition.get("description"))
