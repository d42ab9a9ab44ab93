"""A client's JSON body with some top-level values replaced and every other byte kept: the
forwarded request is the client's own, down to its spacing and key order."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

_encode = msgspec.json.Encoder().encode
_SPACE = b" \t\r\n"


def replace_values(body: bytes, fields: Mapping[str, msgspec.Raw],
                   changes: Mapping[str, bytes]) -> bytes | None:
    """``body`` (whose top-level fields, in order, are ``fields``) with the values named in
    ``changes`` replaced and those it lacks appended; None when its layout cannot be followed
    (duplicate keys, escaped key names), and the caller encodes ``fields`` instead."""
    return _unique_keys(body, fields, changes) or _every_key(body, fields, changes)


def _unique_keys(body: bytes, fields: Mapping[str, msgspec.Raw],
                 changes: Mapping[str, bytes]) -> bytes | None:
    """The common case, without walking the body: each replaced key's quoted name occurs once
    in it. A quoted name cannot occur inside a JSON string (its quotes would be escaped), and
    the key is known to be at the top level, so that one occurrence is the key — never a
    nested one, nor one of two copies, of which JSON parsers keep the last."""
    spans: list[tuple[int, int, bytes]] = []
    for key, new in changes.items():
        raw = fields.get(key)
        if raw is None:
            continue
        name = _encode(key)
        at = body.find(name)
        if at < 0 or body.find(name, at + len(name)) >= 0:
            return None
        colon = _skip_space(body, at + len(name))
        if body[colon:colon + 1] != b":":
            return None
        start = _skip_space(body, colon + 1)
        value = bytes(raw)
        if body[start:start + len(value)] != value:
            return None
        spans.append((start, start + len(value), new))
    end = body.rstrip(_SPACE).rfind(b"}")
    added = [(_encode(key), value) for key, value in changes.items() if key not in fields]
    if added:
        tail = [b"," if fields else b""]
        for i, (name, value) in enumerate(added):
            tail += (b"," if i else b"", name, b":", value)
        spans.append((end, end, b"".join(tail)))
    out: list[bytes] = []
    kept_from = 0
    for start, stop, new in sorted(spans):
        out += (body[kept_from:start], new)
        kept_from = stop
    out.append(body[kept_from:])
    return b"".join(out)


def _every_key(body: bytes, fields: Mapping[str, msgspec.Raw],
               changes: Mapping[str, bytes]) -> bytes | None:
    """Walk the top-level keys in order, checking each value's bytes where it must be."""
    pos = body.find(b"{") + 1
    if pos == 0 or body[:pos - 1].strip(_SPACE):
        return None
    out: list[bytes] = []
    kept_from = 0
    for key, raw in fields.items():
        name = _encode(key)
        at = body.find(name, pos)
        if at < 0 or body[pos:at].strip(_SPACE + b","):
            return None
        colon = _skip_space(body, at + len(name))
        if body[colon:colon + 1] != b":":
            return None
        start = _skip_space(body, colon + 1)
        value = bytes(raw)
        if body[start:start + len(value)] != value:
            return None
        pos = start + len(value)
        if key in changes:
            out += (body[kept_from:start], changes[key])
            kept_from = pos
    if body[pos:].strip(_SPACE) != b"}":
        return None
    out.append(body[kept_from:pos])
    comma = b"," if fields else b""
    for key, value in changes.items():
        if key not in fields:
            out += (comma, _encode(key), b":", value)
            comma = b","
    out.append(body[pos:])
    return b"".join(out)


def _skip_space(body: bytes, at: int) -> int:
    while body[at:at + 1] in (b" ", b"\t", b"\r", b"\n"):
        at += 1
    return at
