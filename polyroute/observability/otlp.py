"""OTLP trace export, encoded by hand: ``ExportTraceServiceRequest`` protobuf bytes.

Why not the OpenTelemetry SDK and its exporter: on this project's benchmark machine the SDK
spent ≈ 430 µs of CPU per request creating three spans (attribute validation, locks, a
context per span) and the OTLP exporter ≈ 650 µs encoding them, against a budget of 30 µs
for tracing in all (issue 13). Building the few messages OTLP needs takes a page: field
numbers below are from opentelemetry-proto (``trace/v1/trace.proto``,
``common/v1/common.proto``, ``resource/v1/resource.proto``), and the tests decode what this
writes with opentelemetry-proto's own classes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any

AttrValue = str | bool | int | float

_DOUBLE = struct.Struct("<d")
_FIXED64 = struct.Struct("<Q")
_SMALL = [bytes((i,)) for i in range(128)]
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


class Encoder:
    """Spans to bytes. Attribute values repeat (models, vendors, deployments, outcomes):
    each (key, value) is encoded once and kept, up to ``_CACHE_MAX`` of them."""

    def __init__(self) -> None:
        self._attrs: dict[tuple[str, type, AttrValue], bytes] = {}
        self._blocks: dict[tuple[Any, ...], bytes] = {}

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
        encoded_name = name.encode()
        parts = [b"\x0a\x10", trace_id, b"\x12\x08", span_id]
        if parent_id:
            parts += [b"\x22\x08", parent_id]
        parts += [b"\x2a", varint(len(encoded_name)), encoded_name, b"\x30", _SMALL[kind],
                  b"\x39", _FIXED64.pack(start_ns), b"\x41", _FIXED64.pack(end_ns),
                  attrs if isinstance(attrs, bytes) else self.attributes(9, attrs)]
        if error:
            parts.append(b"\x7a\x02\x18\x02")  # status (field 15) { code: ERROR }
        return b"".join(parts)

    def export_request(self, resource: Mapping[str, AttrValue], scope: tuple[str, str],
                       spans: Iterable[bytes]) -> bytes:
        """One ResourceSpans with one ScopeSpans holding ``spans`` (each an encoded Span)."""
        scope_msg = _field(1, _field(1, scope[0].encode()) + _field(2, scope[1].encode()))
        scope_spans = scope_msg + b"".join([_field(2, s) for s in spans])
        resource_spans = _field(1, self.attributes(1, resource)) + _field(2, scope_spans)
        return _field(1, resource_spans)
