"""``/mcp``: the gateway as an MCP server."""
