"""Load a config file (or the environment) into a :class:`GatewayConfig`, or raise one
:class:`ConfigError` that names the file, the key path and the fix."""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType, NoneType, UnionType
from typing import Any
from urllib.parse import urlsplit

import msgspec
import platformdirs
import yaml

from polyroute.config import compiled as c
from polyroute.config.discovery import discover
from polyroute.config.errors import ConfigError
from polyroute.config.schema import ConfigFile, DeploymentSection, ProviderSection

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_AUTH_HEADERS = {"bearer": "Authorization", "api-key": "api-key", "x-api-key": "x-api-key"}


def default_sqlite_path() -> str:
    return str(Path(platformdirs.user_data_dir("polyroute")) / "polyroute.db")


def load_config(path: str | None, environ: Mapping[str, str] | None = None) -> c.GatewayConfig:
    env = os.environ if environ is None else environ
    if path is None:
        return _compile(ConfigFile(discover_from_env=True), "environment", env)
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read the file ({exc.strerror})",
                          "check the path given to --config or POLYROUTE_CONFIG") from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(source, where, f"YAML syntax error: {problem}",
                          "fix the YAML syntax at that position") from None
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(source, "", "the top level is not a mapping",
                          "start the file with keys such as 'providers:' and 'model_groups:'")
    try:
        parsed = msgspec.convert(tree, ConfigFile, strict=True)
    except msgspec.ValidationError as exc:
        raise _explain(source, tree, str(exc)) from None
    return _compile(parsed, source, env)


def _compile(cfg: ConfigFile, source: str, env: Mapping[str, str]) -> c.GatewayConfig:
    def fail(path: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(source, path, problem, fix)

    endpoints = {
        name: _endpoint(name, p, f"providers.{name}", env, fail)
        for name, p in cfg.providers.items()
    }
    open_vendors = {n: endpoints[n] for n, p in cfg.providers.items() if p.any_model}
    if cfg.discover_from_env:
        for found in discover(env):
            name = found.vendor.name
            if name in endpoints:
                continue  # an explicit provider of the same name wins
            key_env = found.vendor.key_env
            section = ProviderSection(
                protocol="openai",
                base_url=found.base_url,
                api_key=f"${{{key_env}}}" if key_env and env.get(key_env) else None,
                auth="bearer" if key_env and env.get(key_env) else "none",
                any_model=True,
            )
            open_vendors[name] = _endpoint(name, section, f"environment {name}", env, fail)

    groups: dict[str, c.ModelGroup] = {}
    for gname, group in cfg.model_groups.items():
        deployments = []
        seen: set[str] = set()
        for i, dep in enumerate(group.deployments):
            path = f"model_groups.{gname}.deployments[{i}]"
            deployment = _deployment(dep, path, endpoints, fail)
            if deployment.name in seen:
                raise fail(f"{path}.name", f"duplicate deployment name '{deployment.name}'",
                           "give each deployment of a group a distinct 'name'")
            seen.add(deployment.name)
            deployments.append(deployment)
        groups[gname] = c.ModelGroup(gname, group.routing, tuple(deployments))

    storage = cfg.storage
    return c.GatewayConfig(
        source=source,
        server=c.ServerSettings(cfg.server.host, cfg.server.port, cfg.server.max_body_bytes,
                                cfg.server.body_timeout_s),
        storage=c.StorageSettings(
            sqlite_path=_resolve(storage.sqlite_path, "storage.sqlite_path", env, fail)
            if storage.sqlite_path else default_sqlite_path(),
            request_log=storage.request_log,
            flush_interval_s=storage.flush_interval_s,
            flush_batch=storage.flush_batch,
        ),
        groups=MappingProxyType(groups),
        open_vendors=MappingProxyType(open_vendors),
    )


def _endpoint(
    name: str, p: ProviderSection, path: str, env: Mapping[str, str], fail: Any
) -> c.Endpoint:
    base_url = _resolve(p.base_url, f"{path}.base_url", env, fail).rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail(f"{path}.base_url", f"'{base_url}' is not an http(s) URL",
                   "write a full URL such as https://api.openai.com/v1")
    headers: dict[str, str] = {}
    secrets: list[str] = []
    if p.api_key is not None:
        if not _SECRET_REF.match(p.api_key):
            raise fail(f"{path}.api_key", "a key is written in the file",
                       "keep keys out of config: export it as an environment variable "
                       "and write api_key: ${VARIABLE_NAME}")
        key = _resolve(p.api_key, f"{path}.api_key", env, fail)
        secrets.append(key)
        if p.auth == "none":
            raise fail(f"{path}.auth", "auth is 'none' but an api_key is set",
                       "set auth to bearer, api-key or x-api-key, or remove api_key")
        header = _AUTH_HEADERS[p.auth]
        headers[header] = f"Bearer {key}" if p.auth == "bearer" else key
    for hname, hvalue in p.headers.items():
        value = _resolve(hvalue, f"{path}.headers.{hname}", env, fail)
        if value != hvalue:
            secrets.append(value)
        headers[hname] = value
    return c.Endpoint(
        vendor=name,
        protocol=p.protocol,
        base_url=base_url,
        headers=MappingProxyType(headers),
        quirks=c.Quirks(p.quirks.max_tokens_field, p.quirks.stream_usage,
                        frozenset(p.quirks.drop_params)),
        connect_timeout_s=p.connect_timeout_s,
        timeout_s=p.timeout_s,
        secrets=tuple(secrets),
    )


def _deployment(
    dep: DeploymentSection, path: str, endpoints: Mapping[str, c.Endpoint], fail: Any
) -> c.Deployment:
    endpoint = endpoints.get(dep.provider)
    if endpoint is None:
        known = ", ".join(sorted(endpoints)) or "none defined yet"
        raise fail(f"{path}.provider", f"unknown provider '{dep.provider}'",
                   f"define it under 'providers:' or use one of: {known}")
    price = None
    if dep.price is not None:
        price = c.Price(dep.price.input_per_1m, dep.price.output_per_1m,
                        dep.price.cached_input_per_1m)
    return c.Deployment(
        name=dep.name or f"{dep.provider}/{dep.model}",
        vendor=dep.provider,
        model=dep.model,
        endpoint=endpoint,
        weight=dep.weight,
        priority=dep.priority,
        tags=MappingProxyType(dict(dep.tags)),
        price=price,
        context_window=dep.context_window,
    )


def _resolve(value: str, path: str, env: Mapping[str, str], fail: Any) -> str:
    def sub(m: re.Match[str]) -> str:
        var, default = m.group(1), m.group(2)
        if var in env and env[var] != "":
            return env[var]
        if default is not None:
            return default
        raise fail(path, f"environment variable {var} is not set",
                   f"export {var}=… before starting polyroute, or change this value")

    return _ENV_REF.sub(sub, value)


# --- turning msgspec's validation messages into one helpful line -------------------------

def _explain(source: str, tree: object, message: str) -> ConfigError:
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
