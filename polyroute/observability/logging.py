"""Logging setup. Upstream keys must never reach a log line, whatever code logs what; virtual
keys appear only as their public id (``sk-pr-<id>-…``).

The filter sits on the root logger's handlers, so it also sees what libraries log: aiohttp's
server logs the raw text of a request it could not parse, headers included, and that text is
the one place a client's key would otherwise reach a log whole."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from polyroute.redaction import Redactor, mask_virtual_keys


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._redactor = Redactor(secrets)

    def _clean(self, text: str) -> str:
        return mask_virtual_keys(self._redactor.redact(text))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let the handler report it as usual
            return True
        redacted = self._clean(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def install_redaction(secrets: Iterable[str]) -> None:
    """Attach the redacting filter to every handler of the root logger."""
    redactor = RedactSecrets(secrets)
    root = logging.getLogger()
    for handler in root.handlers:
        for existing in [f for f in handler.filters if isinstance(f, RedactSecrets)]:
            handler.removeFilter(existing)
        handler.addFilter(redactor)


def configure(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
