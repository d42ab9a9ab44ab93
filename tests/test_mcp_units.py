"""The MCP gateway's parts without processes: its config section, the tool names, the
allow-lists of a key, its team and its organisation combined, and a tool result told to a
model."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from polyroute.config import ConfigError, load_config
from polyroute.engine.tool_loop import result_text, wants_mcp
from polyroute.model.chat import ChatRequest, Message
from polyroute.model.mcp import Tool, split_name
from polyroute.model.tools import Tool as ChatTool
from polyroute.policy.directory import _tools_allowed
from polyroute.policy.types import Principal


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> object:
    path = tmp_path / "polyroute.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(str(path), env or {})


def error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert "\n" not in str(caught.value) and "fix:" in str(caught.value)
    return caught.value


def test_servers_compile_with_their_circuits_and_secrets(tmp_path: Path) -> None:
    config = load(tmp_path, """
resilience: {circuit: {failures: 7}}
mcp:
  max_tool_rounds: 3
  servers:
    docs: {url: "http://127.0.0.1:9/mcp", headers: {Authorization: "${DOCS_AUTH}"}}
    files: {command: [python, server.py], env: {LEVEL: "${LEVEL:-warn}"}, cwd: work,
            circuit: {failures: 2, cooldown_s: 5}}
""", {"DOCS_AUTH": "Bearer tok-docs-5f1e2a9c"})
    mcp = config.mcp  # type: ignore[attr-defined]
    assert mcp.max_tool_rounds == 3
    assert mcp.servers["docs"].kind == "http"
    assert mcp.servers["docs"].headers == {"Authorization": "Bearer tok-docs-5f1e2a9c"}
    files = mcp.servers["files"]
    assert files.kind == "stdio" and files.command == ("python", "server.py")
    assert files.env == {"LEVEL": "warn"} and files.cwd == str(tmp_path / "work")
    assert mcp.circuits["docs"].failures == 7  # resilience.circuit's
    assert (mcp.circuits["files"].failures, mcp.circuits["files"].cooldown_s) == (2, 5.0)
    assert "Bearer tok-docs-5f1e2a9c" in config.secrets  # type: ignore[attr-defined]


@pytest.mark.parametrize(("text", "path", "problem"), [
    ("mcp: {servers: {a: {url: 'http://x/mcp', command: [p]}}}", "mcp.servers.a",
     "exactly one of url"),
    ("mcp: {servers: {a: {}}}", "mcp.servers.a", "exactly one of url"),
    ("mcp: {servers: {a: {url: 'ftp://x/mcp'}}}", "mcp.servers.a.url", "not an http(s) URL"),
    ("mcp: {servers: {a: {command: []}}}", "mcp.servers.a.command", "empty"),
    ("mcp: {servers: {a: {url: 'http://x/mcp', headers: {Authorization: 'Bearer abc'}}}}",
     "mcp.servers.a.headers.Authorization", "secret is written in the file"),
    ("mcp: {servers: {a: {command: [p], headers: {x-a: b}}}}", "mcp.servers.a.headers",
     "stdio"),
    ("mcp: {servers: {a__b: {command: [p]}}}", "mcp.servers.a__b", "not a server name"),
])
def test_bad_server_config_names_the_key(tmp_path: Path, text: str, path: str,
                                         problem: str) -> None:
    err = error(tmp_path, text)
    assert err.path.startswith(path), err
    assert problem in str(err)


def test_names_split_at_the_first_double_underscore() -> None:
    assert split_name("docs__search__v2") == ("docs", "search__v2")
    assert split_name("my-srv__x") == ("my-srv", "x")
    assert split_name("search") is None and split_name("__x") is None
    tool = Tool("docs", "search", {"name": "search", "description": "Find.",
                                   "inputSchema": {"type": "object"}})
    assert tool.listed()["name"] == "docs__search"
    assert msgspec.to_builtins(tool.function()) == {"type": "function", "function": {
        "name": "docs__search", "parameters": {"type": "object"}, "description": "Find."}}


def test_allow_lists_combine_across_levels() -> None:
    assert _tools_allowed([None, None]) is None
    assert _tools_allowed([["a__x", "b__y"], None]) == {"a__x", "b__y"}
    # the key narrows its team's wildcard; names outside the team's server are dropped
    assert _tools_allowed([["a__x", "b__y"], ["a__*"]]) == {"a__x"}
    assert _tools_allowed([["a__*"], ["a__*", "b__*"]]) == {"a__*"}
    principal = Principal(key_id="k", mcp_servers=frozenset({"a"}),
                          mcp_tools=frozenset({"a__x", "b__*"}))
    assert principal.may_use_tool("a", "x")
    assert not principal.may_use_tool("a", "y")
    assert not principal.may_use_tool("b", "z")  # b is not an allowed server
    assert Principal().may_use_tool("any", "thing")


def test_a_tool_result_as_a_tool_message() -> None:
    assert result_text({"content": [{"type": "text", "text": "a"},
                                    {"type": "text", "text": "b"}]}) == "a\nb"
    assert result_text({"content": [{"type": "image", "data": "x", "mimeType": "image/png"}],
                        "structuredContent": {"n": 1}}) == '{"n":1}'
    assert result_text({"content": [{"type": "text", "text": "boom"}],
                        "isError": True}) == "Error: boom"


def test_only_requests_with_mcp_tools_take_the_tool_loop() -> None:
    ask = [Message(role="user", content="hi")]
    assert not wants_mcp(ChatRequest(messages=ask))
    assert not wants_mcp(ChatRequest(messages=ask, tools=[ChatTool("function")]))
    assert wants_mcp(ChatRequest(messages=ask, tools=[ChatTool("mcp", server_label="a")]))


def test_the_cli_sets_allow_lists_like_models() -> None:
    import argparse

    from polyroute.admin import cli

    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    ns = parser.parse_args(["keys", "create", "--mcp-servers", "docs, files",
                            "--mcp-tools", "docs__search,files__*", "--models", "gpt"])
    assert cli._spec(ns) == {"mcp_servers": ["docs", "files"],
                             "mcp_tools": ["docs__search", "files__*"], "models": ["gpt"]}
