"""Config loading: valid files compile; every kind of mistake is one line naming the file,
the key path and the fix, and the CLI exits 2 without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from polyroute.config import ConfigError, load_config
from polyroute.config.schema import json_schema

ROOT = Path(__file__).resolve().parents[1]
ENV = {"OPENAI_API_KEY": "sk-test-key-123456"}

VALID = """
server: {port: 4100, max_body_bytes: 1048576}
providers:
  openai:
    base_url: https://api.openai.com/v1
    api_key: ${OPENAI_API_KEY}
  local:
    base_url: http://127.0.0.1:8000/v1
    auth: none
    quirks: {stream_usage: false, max_tokens_field: max_tokens, drop_params: [seed]}
model_groups:
  chat:
    routing: priority
    deployments:
      - provider: openai
        model: gpt-4o-mini
        priority: 0
        tags: {cloud: openai, region: us}
        price: {input_per_1m: 0.15, output_per_1m: 0.6}
        context_window: 128000
      - provider: local
        model: llama
        priority: 1
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "polyroute.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str, env: dict[str, str] = ENV) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path), env)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message
    assert "fix:" in message
    return info.value


def test_valid_config_compiles(tmp_path: Path) -> None:
    config = load_config(str(write(tmp_path, VALID)), ENV)
    group = config.groups["chat"]
    assert group.routing == "priority"
    first, second = group.deployments
    assert first.name == "openai/gpt-4o-mini"
    assert first.endpoint.headers["Authorization"] == "Bearer sk-test-key-123456"
    assert first.price is not None and first.price.output_per_1m == 0.6
    assert first.tags["region"] == "us"
    assert second.endpoint.quirks.drop_params == frozenset({"seed"})
    assert "Authorization" not in second.endpoint.headers
    assert config.server.port == 4100
    assert "sk-test-key-123456" in config.secrets
    assert "sk-test-key-123456" not in repr(first.endpoint)


def test_unknown_key_names_path_and_allowed_keys(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("stream_usage: false", "strem_usage: false"))
    assert err.path == "providers.local.quirks.strem_usage"
    assert "stream_usage" in err.fix


def test_unknown_top_level_key(tmp_path: Path) -> None:
    err = error_of(tmp_path, "modle_groups: {}\n")
    assert err.path == "modle_groups"
    assert "model_groups" in err.fix


def test_missing_env_var(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID, env={})
    assert err.path == "providers.openai.api_key"
    assert "OPENAI_API_KEY" in err.problem


def test_literal_key_is_refused(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("${OPENAI_API_KEY}", "sk-live-abcdef"))
    assert err.path == "providers.openai.api_key"
    assert "${" in err.fix
    assert "sk-live-abcdef" not in str(err)


def test_bad_url(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("http://127.0.0.1:8000/v1", "127.0.0.1:8000"))
    assert err.path == "providers.local.base_url"


def test_dangling_provider_reference(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("provider: local", "provider: lokal"))
    assert err.path == "model_groups.chat.deployments[1].provider"
    assert "local" in err.fix and "openai" in err.fix


def test_wrong_type_and_bad_enum(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("port: 4100", "port: many"))
    assert err.path == "server.port"
    err = error_of(tmp_path, VALID.replace("routing: priority", "routing: fastest"))
    assert err.path == "model_groups.chat.routing"
    assert "weighted" in err.fix


def test_missing_required_key(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("        model: llama\n", ""))
    assert err.path == "model_groups.chat.deployments[1].model"


def test_duplicate_deployment_names(tmp_path: Path) -> None:
    text = VALID.replace("provider: local\n        model: llama",
                         "provider: openai\n        model: gpt-4o-mini")
    err = error_of(tmp_path, text)
    assert "duplicate" in err.problem


def test_yaml_syntax_error(tmp_path: Path) -> None:
    err = error_of(tmp_path, "providers: {a: [}\n")
    assert "line 1" in err.path


@pytest.mark.parametrize("command", ["config check", "serve --config"])
def test_cli_exits_2_with_one_line(tmp_path: Path, command: str) -> None:
    path = write(tmp_path, VALID.replace("stream_usage", "stream_usagee"))
    result = subprocess.run(
        [sys.executable, "-m", "polyroute", *command.split(), str(path)],
        capture_output=True, text=True, timeout=30, env={"OPENAI_API_KEY": "x", "PATH": ""},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "providers.local.quirks.stream_usagee" in lines[0]


def test_cli_check_accepts_the_example(tmp_path: Path) -> None:
    env = {"OPENAI_API_KEY": "x", "ANTHROPIC_API_KEY": "x", "GROQ_API_KEY": "x", "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-m", "polyroute", "config", "check",
         str(ROOT / "examples" / "polyroute.yaml")],
        capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 0, result.stderr
    # Says what the file serves in words a reader of docs/config.md knows.
    assert result.stdout.strip().endswith(
        "polyroute.yaml: ok — 3 model groups (7 deployments); "
        "any model as '<vendor>/<model id>' from anthropic, openai")


def test_committed_json_schema_is_current() -> None:
    committed = json.loads((ROOT / "docs" / "config.schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema())), (
        "regenerate with: polyroute config schema > docs/config.schema.json")


def test_schema_rejects_unknown_keys() -> None:
    schema = json_schema()
    defs = schema["$defs"]
    assert isinstance(defs, dict)
    assert defs["ProviderSection"]["additionalProperties"] is False


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    text = "providers:\n  a: {base_url: http://x/v1}\n  a: {base_url: http://y/v1}\n"
    err = error_of(tmp_path, text)
    assert "line 3" in err.path and "twice" in err.problem


def test_env_reference_where_it_is_not_expanded(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("port: 4100", "port: 4100, host: '${HOST}'"))
    assert err.path == "server.host"
    assert "not expanded" in err.problem


def test_secret_header_must_be_a_reference(tmp_path: Path) -> None:
    text = VALID.replace("    auth: none\n",
                         "    auth: none\n    headers: {X-Auth-Token: abc123}\n")
    err = error_of(tmp_path, text)
    assert err.path == "providers.local.headers.X-Auth-Token"
    text = VALID.replace("    auth: none\n",
                         "    auth: none\n    headers: {X-Auth-Token: '${OPENAI_API_KEY}'}\n")
    config = load_config(str(write(tmp_path, text)), ENV)
    assert config.groups["chat"].deployments[1].endpoint.headers["X-Auth-Token"] == (
        "sk-test-key-123456")


def test_header_may_not_shadow_the_auth_header(tmp_path: Path) -> None:
    text = VALID.replace("    api_key: ${OPENAI_API_KEY}\n",
                         "    api_key: ${OPENAI_API_KEY}\n    headers: {authorization: x}\n")
    err = error_of(tmp_path, text)
    assert "already set" in err.problem


def test_secret_with_default_is_refused(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("${OPENAI_API_KEY}", "${OPENAI_API_KEY:-sk-x}"))
    assert "default" in err.problem


def test_api_key_auth_without_key(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("auth: none", "auth: api-key"))
    assert err.path == "providers.local.api_key"


def test_relative_sqlite_path_is_relative_to_the_file(tmp_path: Path) -> None:
    text = VALID + "storage: {sqlite_path: data/gw.db}\n"
    config = load_config(str(write(tmp_path, text)), ENV)
    assert config.storage.sqlite_path == str(tmp_path / "data" / "gw.db")
