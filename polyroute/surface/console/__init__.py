"""The web console at /ui (issue 13)."""
