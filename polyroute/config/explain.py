"""Turn msgspec's validation messages into one helpful line: the concrete key path (msgspec
writes dict keys as ``[...]``), what is wrong, and how to fix it."""

from __future__ import annotations

import re
import typing
from types import NoneType, UnionType
from typing import Any

import msgspec

from polyroute.config.errors import ConfigError
from polyroute.config.schema import ConfigFile


def explain(source: str, tree: object, message: str) -> ConfigError:
    problem, _, at = message.partition(" - at `")
    path = _concrete_path(tree, at.rstrip("`").removeprefix("$").lstrip("."))
    unknown = re.match(r"Object contains unknown field `(.+)`", problem)
    if unknown:
        key = unknown.group(1)
        allowed = _struct_keys(_type_at(path))
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        return ConfigError(source, _join(path, key), f"unknown key '{key}'",
                           f"remove it or correct its spelling{hint}")
    missing = re.match(r"Object missing required field `(.+)`", problem)
    if missing:
        key = missing.group(1)
        return ConfigError(source, _join(path, key), "required key is missing", f"add '{key}'")
    choices = typing.get_args(_unwrap(_type_at(path)))
    if problem.startswith("Invalid enum value") and choices:
        return ConfigError(source, path, problem[0].lower() + problem[1:],
                           f"use one of: {', '.join(map(str, choices))}")
    return ConfigError(source, path, problem[0].lower() + problem[1:],
                       "correct the value (every key is described in docs/config.md)")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _split(path: str) -> list[str]:
    return re.findall(r"\[[^\]]*\]|[^.\[]+", path)


def _concrete_path(tree: object, path: str) -> str:
    """msgspec writes a dict key as '[...]': find which entry failed and name it."""
    out: list[str] = []
    node: Any = tree
    tp: Any = ConfigFile
    for part in _split(path):
        tp = _unwrap(tp)
        if part == "[...]" and typing.get_origin(tp) is dict and isinstance(node, dict):
            value_type = typing.get_args(tp)[1]
            key = next((k for k, v in node.items() if not _valid(v, value_type)), "?")
            out.append(f".{key}")
            node, tp = node.get(key), value_type
            continue
        out.append(part if part.startswith("[") else f".{part}")
        if part.startswith("[") and isinstance(node, list):
            index = int(part[1:-1])
            node = node[index] if index < len(node) else None
        elif isinstance(node, dict):
            node = node.get(part)
        tp = _child_type(tp, part)
    return "".join(out).lstrip(".")


def _valid(value: object, tp: Any) -> bool:
    try:
        msgspec.convert(value, tp, strict=True)
    except msgspec.ValidationError:
        return False
    return True


def _type_at(path: str) -> Any:
    tp: Any = ConfigFile
    for part in _split(path):
        tp = _child_type(_unwrap(tp), part)
    return tp


def _child_type(tp: Any, part: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is list:
        return typing.get_args(tp)[0]
    if origin is dict:
        return typing.get_args(tp)[1]
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return typing.get_type_hints(tp, include_extras=True).get(part)
    return None


def _struct_keys(tp: Any) -> list[str]:
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return list(tp.__struct_fields__)
    return []


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type that carries the structure."""
    while True:
        if typing.get_origin(tp) is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if isinstance(tp, UnionType) or typing.get_origin(tp) is typing.Union:
            args = [a for a in typing.get_args(tp) if a is not NoneType]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp
