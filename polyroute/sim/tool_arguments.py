"""Plausible JSON arguments for a forced tool call, built from the function's schema."""

from __future__ import annotations

import re
from typing import Any

import msgspec

_ENCODER = msgspec.json.Encoder()
# Arguments stream the way OpenAI's do: alternating word runs and punctuation runs,
# e.g. '{"', 'location', '":"', 'Paris', '"}'.
_FRAGMENT = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9]+")
_MAX_DEPTH = 4
_STRING_EXAMPLES = {
    "location": "Paris",
    "city": "Paris",
    "place": "Paris",
    "destination": "Paris",
    "country": "France",
    "unit": "celsius",
    "units": "celsius",
    "query": "weather in Paris",
    "language": "en",
    "name": "Ada",
}


def example_arguments(parameters: dict[str, Any] | None) -> str:
    return _ENCODER.encode(_example_object(parameters or {}, 0)).decode()


def argument_fragments(arguments: str) -> list[str]:
    return _FRAGMENT.findall(arguments)


def _example_object(schema: dict[str, Any], depth: int) -> dict[str, Any]:
    properties = schema.get("properties")
    required = schema.get("required")
    if not isinstance(properties, dict) or not isinstance(required, list):
        return {}
    result: dict[str, Any] = {}
    for name in required:
        if isinstance(name, str):
            prop = properties.get(name)
            result[name] = _example_value(name, prop if isinstance(prop, dict) else {}, depth)
    return result


def _example_value(name: str, schema: dict[str, Any], depth: int) -> Any:
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "array":
        items = schema.get("items")
        if depth >= _MAX_DEPTH or not isinstance(items, dict):
            return []
        return [_example_value(name, items, depth + 1)]
    if kind == "object":
        return {} if depth >= _MAX_DEPTH else _example_object(schema, depth + 1)
    return _STRING_EXAMPLES.get(name.lower(), "example")
