"""The config file's schema. Every key of the YAML file is a field here, and nothing else is
accepted: unknown keys are errors, so a typo never silently falls back to a default.

The JSON Schema (``polyroute config schema``) is generated from these same types.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import sys
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

MiB = 1024 * 1024

Positive = Annotated[float, Meta(gt=0)]
NonNegative = Annotated[float, Meta(ge=0)]


class _Section(Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    pass


class ServerSection(_Section, kw_only=True):
    host: str = msgspec.field(default="127.0.0.1")
    port: Annotated[int, Meta(ge=0, le=65535)] = 4000
    max_body_bytes: Annotated[int, Meta(gt=0)] = 8 * MiB
    """Request bodies larger than this get 413."""
    body_timeout_s: Positive = 30.0
    """A client that has not sent its whole body by then gets 408."""


class StorageSection(_Section, kw_only=True):
    sqlite_path: str | None = None
    """Defaults to polyroute.db in the user's data directory."""
    request_log: bool = True
    flush_interval_s: Positive = 0.5
    flush_batch: Annotated[int, Meta(gt=0)] = 500


class Quirks(_Section, kw_only=True):
    """Differences between OpenAI-compatible servers, switched on per provider."""

    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = None
    """Rename the output-token limit to the field this server understands."""
    stream_usage: bool = True
    """Ask for usage in streams (stream_options.include_usage); off for servers that reject it."""
    drop_params: list[str] = msgspec.field(default_factory=list)
    """Top-level request parameters removed before sending (ones this server rejects)."""


class ProviderSection(_Section, kw_only=True):
    protocol: Literal["openai"] = "openai"
    base_url: str
    api_key: str | None = None
    """Only as an environment reference: ${OPENAI_API_KEY}."""
    auth: Literal["bearer", "api-key", "x-api-key", "none"] = "bearer"
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    quirks: Quirks = msgspec.field(default_factory=Quirks)
    connect_timeout_s: Positive = 10.0
    timeout_s: Positive = 600.0
    """Total time allowed for one upstream attempt."""
    any_model: bool = False
    """Also serve '<provider name>/<any model id>' without a model group."""


class PriceSection(_Section, kw_only=True):
    input_per_1m: NonNegative
    output_per_1m: NonNegative
    cached_input_per_1m: NonNegative | None = None


class DeploymentSection(_Section, kw_only=True):
    provider: str
    model: str
    """The model id the upstream knows."""
    name: str | None = None
    """Unique label in logs and metrics; defaults to '<provider>/<model>'."""
    weight: Positive = 1.0
    priority: int = 0
    """Lower is tried first under 'priority' routing."""
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    """Free-form labels such as cloud and region."""
    price: PriceSection | None = None
    context_window: Annotated[int, Meta(gt=0)] | None = None


class GroupSection(_Section, kw_only=True):
    routing: Literal["weighted", "priority"] = "weighted"
    deployments: Annotated[list[DeploymentSection], Meta(min_length=1)]


class ConfigFile(_Section, kw_only=True):
    server: ServerSection = msgspec.field(default_factory=ServerSection)
    storage: StorageSection = msgspec.field(default_factory=StorageSection)
    providers: dict[str, ProviderSection] = msgspec.field(default_factory=dict)
    model_groups: dict[str, GroupSection] = msgspec.field(default_factory=dict)
    discover_from_env: bool = False
    """Also add the vendors found in the environment, as with no config file."""


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the file, with each key's docstring above as its description."""
    schema: dict[str, Any] = msgspec.json.schema(ConfigFile)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "polyroute configuration"
    for struct_name, docs in _attribute_docs().items():
        properties = schema["$defs"].get(struct_name, {}).get("properties", {})
        for key, doc in docs.items():
            if key in properties:
                properties[key]["description"] = doc
    return schema


def _attribute_docs() -> dict[str, dict[str, str]]:
    """Attribute docstrings (a string right after an annotated field) of every class here."""
    tree = ast.parse(inspect.getsource(sys.modules[__name__]))
    found: dict[str, dict[str, str]] = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        docs = found.setdefault(cls.name, {})
        for field_node, next_node in itertools.pairwise(cls.body):
            if (isinstance(field_node, ast.AnnAssign) and isinstance(field_node.target, ast.Name)
                    and isinstance(next_node, ast.Expr)
                    and isinstance(next_node.value, ast.Constant)
                    and isinstance(next_node.value.value, str)):
                docs[field_node.target.id] = " ".join(next_node.value.value.split())
    return found
