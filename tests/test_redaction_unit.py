"""The redactor's rules on their own: whole secrets, fragments, virtual keys, log records."""

from __future__ import annotations

import logging

from polyroute.observability.logging import RedactSecrets
from polyroute.redaction import REDACTED, Redactor, mask_virtual_keys

KEY = "sk-proj-Xq7RrT2mLw9vB4nZ0cYd"
KEY_ID = "0123456789abcdef"
VIRTUAL = f"sk-pr-{KEY_ID}-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcdefg"


def test_whole_secrets_and_fragments_are_replaced() -> None:
    r = Redactor([KEY, "short"])
    assert r.redact(f"Incorrect API key provided: {KEY}.") == \
        f"Incorrect API key provided: {REDACTED}."
    # Cut short, masked in the middle, or split by the vendor's own text: each run of 12+
    # characters of the key goes; what remains is too short to matter.
    cut = r.redact(f"key {KEY[:-4]}****")
    assert KEY[:12] not in cut and cut.startswith(f"key {REDACTED}")
    assert KEY[-12:] not in r.redact(f"ends …{KEY[-14:]}")
    assert r.redact("short values like 'short' are left alone") == \
        "short values like 'short' are left alone"
    assert r.redact("nothing secret here at all") == "nothing secret here at all"


def test_longest_secret_wins_and_extra_secrets_add_up() -> None:
    inner = KEY[:16]
    r = Redactor([inner, KEY])
    assert r.redact(KEY) == REDACTED
    more = r.with_secrets(["Bearer-token-from-request-9f8e"])
    assert more.redact("got Bearer-token-from-request-9f8e") == f"got {REDACTED}"
    assert r.with_secrets([]) is r and not Redactor([])


def test_virtual_keys_keep_only_their_public_id() -> None:
    assert mask_virtual_keys(f"Bearer {VIRTUAL}") == f"Bearer sk-pr-{KEY_ID}-…"
    assert mask_virtual_keys(f"b'x-api-key: {VIRTUAL}\\x01'") == \
        f"b'x-api-key: sk-pr-{KEY_ID}-…\\x01'"
    assert mask_virtual_keys("key=sk-pr-not-a-real-shape&x=1") == "key=sk-pr-…&x=1"
    assert mask_virtual_keys("no keys") == "no keys"


def test_log_records_are_cleaned_in_message_arguments_and_tracebacks() -> None:
    f = RedactSecrets([KEY])
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "sent %s with %s",
                               (KEY, VIRTUAL), None)
    assert f.filter(record)
    assert record.getMessage() == f"sent {REDACTED} with sk-pr-{KEY_ID}-…"
    try:
        raise ValueError(f"bad header {VIRTUAL} for {KEY}")
    except ValueError:
        import sys
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (),
                                   sys.exc_info())
    assert f.filter(record)
    assert record.exc_text is not None
    assert KEY not in record.exc_text and VIRTUAL not in record.exc_text
    assert f"sk-pr-{KEY_ID}-…" in record.exc_text
