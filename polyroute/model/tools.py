"""Tools, tool choice, response format and image parts, typed once when a request is decoded.

Each surface builds these (the OpenAI one by decoding, the others from their own wire types),
so an adapter reads attributes instead of checking dicts again. They are lenient: every field
a vendor might leave out is optional, so a shape only some upstream understands (OpenAI's
``allowed_tools`` choice, a ``custom`` tool) still decodes, and the adapter that cannot
express it says so. A client speaking OpenAI's dialect to an OpenAI upstream is forwarded its
own bytes (``ChatRequest.passthrough``), so nothing these types leave out is lost there; the
vendor keys other dialects bring (``cache_control``) are fields of their own, so the OpenAI
re-encode of a cross-dialect request keeps them.
"""

from __future__ import annotations

from typing import Any

import msgspec


class FunctionDefinition(msgspec.Struct, omit_defaults=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    """JSON Schema of the arguments; None: the function takes none."""
    strict: bool | None = None
    cache_control: dict[str, Any] | None = None
    """A prompt-cache breakpoint (Anthropic's), where some OpenAI-dialect clients put it."""


class Tool(msgspec.Struct, omit_defaults=True):
    type: str
    """Only ``function`` tools are translated; another kind is refused by an adapter that is
    not the client's own protocol. No default, as OpenAI requires it sent (``omit_defaults``
    would drop a default from the re-encode)."""
    function: FunctionDefinition | None = None
    cache_control: dict[str, Any] | None = None
    """A prompt-cache breakpoint after this tool (Anthropic's, Bedrock's cachePoint)."""
    server_label: str | None = None
    """An ``mcp`` tool: the gateway's MCP server whose tools to offer (docs/mcp.md)."""
    allowed_tools: list[str] | None = None
    """An ``mcp`` tool: only these of the server's tools (None: every one the key may use)."""

    @classmethod
    def of_function(cls, name: str, parameters: dict[str, Any], description: str | None = None,
                    strict: bool | None = None,
                    cache_control: dict[str, Any] | None = None) -> Tool:
        """A function tool, as the surfaces of other dialects build them."""
        return cls("function", FunctionDefinition(
            name, description or None, parameters, strict), cache_control)

    @property
    def cache_point(self) -> dict[str, Any] | None:
        return self.cache_control or (self.function.cache_control if self.function else None)


class FunctionName(msgspec.Struct):
    name: str


class ToolChoice(msgspec.Struct, omit_defaults=True):
    """The object form of ``tool_choice``; the string form (``auto``, ``none``,
    ``required``) stays a string on the request."""

    type: str
    function: FunctionName | None = None
    """The one function the model must call; None for choices other than ``function``."""

    @classmethod
    def naming(cls, name: str) -> ToolChoice:
        """The choice that makes the model call function ``name``."""
        return cls("function", FunctionName(name))

    @property
    def forced(self) -> str | None:
        """The name of the function the model must call, if this choice names one."""
        return self.function.name if self.type == "function" and self.function else None


class JSONSchemaFormat(msgspec.Struct, omit_defaults=True):
    name: str | None = None
    description: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class ResponseFormat(msgspec.Struct, omit_defaults=True):
    type: str
    """``text``, ``json_object`` or ``json_schema``."""
    json_schema: JSONSchemaFormat | None = None

    @classmethod
    def of_schema(cls, schema: dict[str, Any], name: str = "output",
                  strict: bool | None = None) -> ResponseFormat:
        """Structured output valid against ``schema``."""
        return cls("json_schema", JSONSchemaFormat(name=name, schema=schema, strict=strict))

    @property
    def schema(self) -> dict[str, Any] | None:
        """The JSON Schema of a ``json_schema`` format; None for any other."""
        if self.type != "json_schema" or self.json_schema is None:
            return None
        return self.json_schema.schema


class ImageURL(msgspec.Struct, omit_defaults=True, dict=True):
    url: str
    detail: str | None = None

    @property
    def data(self) -> tuple[str, str] | None:
        """A ``data:<type>;base64,<data>`` URL split once into (media type, lowercased; data);
        None for any other URL or a data: URL that is not base64."""
        try:
            return self.__dict__["_data"]  # type: ignore[no-any-return]
        except KeyError:
            pass
        split = split_data_url(self.url)
        self.__dict__["_data"] = split
        return split


def split_data_url(url: str) -> tuple[str, str] | None:
    """``data:image/png;base64,AAAA`` → ("image/png", "AAAA"); None if it is not one."""
    head, comma, data = url.partition(",")
    if not url.startswith("data:") or not comma or not head.endswith(";base64"):
        return None
    return head[5:-7].lower(), data
