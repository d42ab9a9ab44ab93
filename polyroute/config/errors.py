from __future__ import annotations


class ConfigError(Exception):
    """A configuration problem, reported as one line: where, what, and how to fix it."""

    def __init__(self, source: str, path: str, problem: str, fix: str) -> None:
        self.source = source
        self.path = path
        self.problem = problem
        self.fix = fix
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {problem} — fix: {fix}")
