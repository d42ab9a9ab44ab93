"""Read a YAML config file strictly: a key written twice is an error, not "the last one wins"."""

from __future__ import annotations

from typing import Any

import yaml

from polyroute.config.errors import ConfigError


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class _StrictLoader(yaml.SafeLoader):
    pass


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise _DuplicateKey(problem=f"the key '{key}' appears twice in one mapping",
                                problem_mark=key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_yaml(source: str, text: str) -> dict[str, Any]:
    try:
        tree = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        fix = ("keep one of them" if isinstance(exc, _DuplicateKey)
               else "fix the YAML syntax at that position")
        raise ConfigError(source, where, f"YAML error: {problem}", fix) from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(source, "", "the top level is not a mapping",
                          "start the file with keys such as 'providers:' and 'model_groups:'")
    return tree
