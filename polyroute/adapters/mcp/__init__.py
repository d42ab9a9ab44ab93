"""MCP servers upstream, through the official ``mcp`` SDK's client."""
