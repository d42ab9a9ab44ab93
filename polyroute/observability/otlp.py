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
concatenation each onto a prefix precomputed per attribute name. Protobuf readers accept
fields in any order, so the head's times may come before the tail's name.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any

AttrValue = str | bool | int | float

_DOUBLE = struct.Struct("<d")
# A Span's trace_id (1), span_id (2), [parent_span_id (4)], start (7) and end (8) times.
_HEAD = struct.Struct("<2s16s2s8scQcQ")
_HEAD_CHILD = struct.Struct("<2s16s2s8s2s8scQcQ")
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


class _Named:
    """One span attribute name's encoded prefixes: ``field 9 { key, value { <kind> ... } }``
    up to the value's own bytes, for values encoded per span (ids, counts, costs)."""

    __slots__ = ("float_head", "int_heads", "key")

    def __init__(self, name: str) -> None:
        encoded = name.encode()
        self.key = b"\x0a" + varint(len(encoded)) + encoded
        n = len(self.key)
        # value { double: 8 bytes } is 11 bytes after the key; value { int: k bytes } 3 + k.
        self.float_head = b"\x4a" + varint(n + 11) + self.key + b"\x12\x09\x21"
        self.int_heads = [b""] + [b"\x4a" + varint(n + 3 + k) + self.key + b"\x12"
                                  + _SMALL[1 + k] + b"\x18" for k in range(1, 11)]


class Encoder:
    """Spans to bytes. Attribute values repeat (models, vendors, deployments, outcomes):
    each (key, value) is encoded once and kept, up to ``_CACHE_MAX`` of them; so are span
    tails (``tail``, ``keep``) and the prefixes of per-span attributes (``int_attr`` …)."""

    def __init__(self) -> None:
        self._attrs: dict[tuple[str, type, AttrValue], bytes] = {}
        self._blocks: dict[tuple[Any, ...], bytes] = {}
        self._names: dict[str, _Named] = {}

    def _named(self, name: str) -> _Named:
        named = self._names.get(name)
        if named is None:
            named = self._names[name] = _Named(name)
        return named

    def int_attr(self, name: str, value: int) -> bytes:
        """One span attribute (field 9) with an integer value."""
        encoded = varint(value & _MASK64)
        return self._named(name).int_heads[len(encoded)] + encoded

    def float_attr(self, name: str, value: float) -> bytes:
        return self._named(name).float_head + _DOUBLE.pack(value)

    def str_attr(self, name: str, value: str) -> bytes:
        encoded = value.encode()
        any_value = b"\x0a" + varint(len(encoded)) + encoded
        kv = self._named(name).key + b"\x12" + varint(len(any_value)) + any_value
        return b"\x4a" + varint(len(kv)) + kv

    def cached(self, key: tuple[Any, ...]) -> bytes | None:
        """A tail (or block) kept under ``key``, or None (then ``keep`` it)."""
        return self._blocks.get(key)

    def keep(self, key: tuple[Any, ...], encoded: bytes) -> bytes:
        if len(self._blocks) >= _CACHE_MAX:
            self._blocks.clear()
        self._blocks[key] = encoded
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
            return _HEAD_CHILD.pack(b"\x0a\x10", trace_id, b"\x12\x08", span_id,
                                    b"\x22\x08", parent_id, b"\x39", start_ns, b"\x41",
                                    end_ns)
        return _HEAD.pack(b"\x0a\x10", trace_id, b"\x12\x08", span_id, b"\x39", start_ns,
                          b"\x41", end_ns)

    def block(self, key: tuple[Any, ...], attrs: Callable[[], Mapping[str, AttrValue]],
              field: int = 9) -> bytes:
        """The encoded attributes ``attrs()`` stands for, kept under ``key``: spans whose
        attributes are all categorical (an attempt's) repeat them exactly."""
        encoded = self._blocks.get(key)
        if encoded is None:
            if len(self._blocks) >= _CACHE_MAX:
                self._blocks.clear()
            encoded = self._blocks[key] = self.attributes(field, attrs())
        return encoded

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
                       spans: Iterable[bytes]) -> bytes:
        """One ResourceSpans with one ScopeSpans holding ``spans`` (each an encoded Span)."""
        scope_msg = _field(1, _field(1, scope[0].encode()) + _field(2, scope[1].encode()))
        scope_spans = scope_msg + b"".join(
            [b"\x12" + varint(len(s)) + s for s in spans])  # field 2, each
        resource_spans = _field(1, self.attributes(1, resource)) + _field(2, scope_spans)
        return _field(1, resource_spans)
