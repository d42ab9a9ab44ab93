"""Durable storage. One SQL dialect-neutral implementation; each backend module only connects."""
