"""OTLP trace export, encoded by hand: ``ExportTraceServiceRequest`` protobuf bytes.

Why not the OpenTelemetry SDK and its exporter: on this project's benchmark machine the SDK
spent ≈ 430 µs of CPU per request creating three spans (attribute validation, locks, a
context per span) and the OTLP exporter ≈ 650 µs encoding them, against a budget of 30 µs
for tracing in all (issue 13). Building the few messages OTLP needs takes a page: field
numbers below are from opentelemetry-proto (``trace/v1/trace.proto``,
``common/v1/common.proto``, ``resource/v1/resource.proto``), and the tests decode what this
writes with opentelemetry-proto's own classes.

How it stays cheap (≈ 3 spans per request, in the export thread): a span is a fixed-layout
head (ids and times, one ``struct.pack``) followed by a *tail* (name, kind, the categorical
attributes and the status) that repeats from request to request and is encoded once per
distinct signature; the few attributes that vary per request (its id, tokens, cost) are one
concatenation each onto a prefix precomputed per attribute name (``Attr``). Protobuf readers
accept fields in any order, so the head's times may come before the tail's name, or after it
(an attempt's cached tail starts with the span's field frame).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any

AttrValue = str | bool | int | float

_DOUBLE = struct.Struct("<d")
# A Span's trace_id (1), span_id (2), [parent_span_id (4)], start (7) and end (8) times.
HEAD = struct.Struct("<2s16s2s8scQcQ")
HEAD_CHILD = struct.Struct("<2s16s2s8s2s8scQcQ")
"""Packed as ``head`` shows (the tracer packs them itself: a call less per span)."""
_SMALL = [bytes((i,)) for i in range(128)]
_MASK64 = 0xFFFF_FFFF_FFFF_FFFF
_CACHE_MAX = 8192
SERVER, CLIENT = 2, 3
"""Span.SpanKind values."""


def varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, embedded messages)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def any_value(value: AttrValue) -> bytes:
    if isinstance(value, bool):  # before int: a bool is an int
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + varint(value & 0xFFFF_FFFF_FFFF_FFFF)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    encoded = value.encode()
    return b"\x0a" + varint(len(encoded)) + encoded


def key_value(name: str, value: AttrValue) -> bytes:
    """A KeyValue message."""
    encoded = name.encode()
    av = any_value(value)
    return b"\x0a" + varint(len(encoded)) + encoded + b"\x12" + varint(len(av)) + av


SPAN_FIELDS = [b"\x12" + varint(n) for n in range(4096)]
"""ScopeSpans' field 2 (a Span) up to its bytes, by the span's length: a list index, not a
call and two concatenations per span (the tracer indexes it inline; ``span_field`` beyond)."""


def span_field(span: bytes) -> bytes:
    """``span`` as the ScopeSpans field it is exported in (``export_request``'s ``fields``)."""
    n = len(span)
    return (SPAN_FIELDS[n] if n < 4096 else b"\x12" + varint(n)) + span


class Attr:
    """One span attribute whose value is encoded per span (ids, counts, costs): the
    ``field 9 { key, value { <kind> ... } }`` bytes up to the value's own, precomputed, so a
    value is one concatenation (small integers: one list index)."""

    __slots__ = ("_float_head", "_int_heads", "_key", "_small", "_str_heads")

    def __init__(self, name: str) -> None:
        encoded = name.encode()
        self._key = key = b"\x0a" + varint(len(encoded)) + encoded
        n = len(key)
        # value { double: 8 bytes } is 11 bytes after the key; value { int: k bytes } 3 + k;
        # value { string: k bytes } 2 + k + its length's varint (one byte under 128).
        self._float_head = b"\x4a" + varint(n + 11) + key + b"\x12\x09\x21"
        self._int_heads = [b""] + [b"\x4a" + varint(n + 3 + k) + key + b"\x12"
                                   + _SMALL[1 + k] + b"\x18" for k in range(1, 11)]
        self._small = [self._int_heads[1] + _SMALL[v] for v in range(128)]
        self._str_heads = [b"\x4a" + varint(n + 4 + k) + key + b"\x12" + _SMALL[2 + k]
                           + b"\x0a" + _SMALL[k] for k in range(120)]

    def of_int(self, value: int) -> bytes:
        if 0 <= value < 0x80:
            return self._small[value]
        if 0 < value < 0x4000:  # (most token counts: no varint call)
            return self._int_heads[2] + bytes((value & 0x7F | 0x80, value >> 7))
        encoded = varint(value & _MASK64)
        return self._int_heads[len(encoded)] + encoded

    def of_float(self, value: float) -> bytes:
        return self._float_head + _DOUBLE.pack(value)

    def of_str(self, value: str) -> bytes:
        encoded = value.encode()
        if len(encoded) < 120:
            return self._str_heads[len(encoded)] + encoded
        any_value = b"\x0a" + varint(len(encoded)) + encoded
        kv = self._key + b"\x12" + varint(len(any_value)) + any_value
        return b"\x4a" + varint(len(kv)) + kv


class Encoder:
    """Spans to bytes. Attribute values repeat (models, vendors, deployments, outcomes):
    each (key, value) is encoded once and kept, up to ``_CACHE_MAX`` of them; so are span
    tails (``tails``, ``keep``)."""

    def __init__(self) -> None:
        self._attrs: dict[tuple[str, type, AttrValue], bytes] = {}
        self.tails: dict[tuple[Any, ...], bytes] = {}
        """A span's tail by its signature, read directly on the export path (a ``get`` on
        the dict, not a method call); added with ``keep``."""

    def keep(self, key: tuple[Any, ...], encoded: bytes) -> bytes:
        if len(self.tails) >= _CACHE_MAX:
            self.tails.clear()
        self.tails[key] = encoded
        return encoded

    def tail(self, name: str, kind: int, attrs: Mapping[str, AttrValue] | bytes,
             error: bool) -> bytes:
        """A span's name, kind, attributes and status: all but its ids and times."""
        encoded_name = name.encode()
        status = b"\x7a\x02\x18\x02" if error else b""  # status (15) { code: ERROR }
        return b"".join((b"\x2a", varint(len(encoded_name)), encoded_name, b"\x30",
                         _SMALL[kind],
                         attrs if isinstance(attrs, bytes) else self.attributes(9, attrs),
                         status))

    @staticmethod
    def head(trace_id: bytes, span_id: bytes, parent_id: bytes | None, start_ns: int,
             end_ns: int) -> bytes:
        """A span's ids and times (16-byte trace id, 8-byte span ids)."""
        if parent_id:
            return HEAD_CHILD.pack(b"\x0a\x10", trace_id, b"\x12\x08", span_id,
                                   b"\x22\x08", parent_id, b"\x39", start_ns, b"\x41",
                                   end_ns)
        return HEAD.pack(b"\x0a\x10", trace_id, b"\x12\x08", span_id, b"\x39", start_ns,
                         b"\x41", end_ns)

    def attributes(self, field: int, attrs: Mapping[str, AttrValue],
                   cached: bool = True) -> bytes:
        """Repeated KeyValue in field ``field`` (9 in a Span, 1 in a Resource). ``cached``:
        False for values that seldom repeat (ids, token counts), which would only churn the
        cache."""
        tag = varint(field << 3 | 2)
        cache = self._attrs
        out = []
        for name, value in attrs.items():
            kind = type(value)
            key = (name, kind, value)
            if kind is float or not cached:  # costs and durations: seldom twice the same
                kv = key_value(name, value)
                out.append(tag + varint(len(kv)) + kv)
                continue
            encoded = cache.get(key)
            if encoded is None:
                if len(cache) >= _CACHE_MAX:
                    cache.clear()
                kv = key_value(name, value)
                encoded = cache[key] = tag + varint(len(kv)) + kv
            out.append(encoded)
        return b"".join(out)

    def span(self, trace_id: bytes, span_id: bytes, parent_id: bytes | None, name: str,
             kind: int, start_ns: int, end_ns: int, attrs: Mapping[str, AttrValue] | bytes,
             error: bool) -> bytes:
        """``attrs``: a mapping, or attributes already encoded (``block``, ``attributes``)."""
        return (self.head(trace_id, span_id, parent_id, start_ns, end_ns)
                + self.tail(name, kind, attrs, error))

    def export_request(self, resource: Mapping[str, AttrValue], scope: tuple[str, str],
                       fields: Iterable[bytes]) -> bytes:
        """One ResourceSpans with one ScopeSpans holding ``fields`` (each an encoded Span as
        its field: ``span_field``)."""
        scope_msg = _field(1, _field(1, scope[0].encode()) + _field(2, scope[1].encode()))
        scope_spans = scope_msg + b"".join(fields)
        resource_spans = _field(1, self.attributes(1, resource)) + _field(2, scope_spans)
        return _field(1, resource_spans)
