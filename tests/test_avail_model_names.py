"""Issue 10, item 8: client-chosen model names cannot exhaust memory or CPU, even on refused
requests (200 refused requests with 1 MB names took a gateway from 105 MB to 974 MB of RSS;
one /metrics scrape then rendered 5.7 GB on the event loop; 500k ``models`` entries held the
loop for 3 s).

The attacks, with the official SDK: huge names, control characters, huge ``models`` lists,
and many distinct ``<vendor>/<model>`` names that succeed. The gateway's RSS stays bounded,
/metrics stays small (label sets capped), and /metrics is protected by configuration."""

from __future__ import annotations

import concurrent.futures
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import SIM_KEY, gateway_config
from tests.support.gateway import GatewayProcess
from tests.support.policy import MASTER_KEY
from tests.support.sim import SimServer

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
LABEL_CAP = 40


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _scrape(gw: GatewayProcess, key: str | None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"{gw.root_url}/metrics")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayProcess]:
    with SimServer(api_key=SIM_KEY) as sim:
        config = gateway_config(sim, auth={"master_key": "${PR_MASTER}"},
                                metrics={"auth": "admin", "max_model_labels": LABEL_CAP},
                                server={"max_body_bytes": 4 * 1024 * 1024})
        with GatewayProcess(config, {"SIM_KEY": SIM_KEY, "PR_MASTER": MASTER_KEY}) as gateway:
            yield gateway


@pytest.fixture(scope="module")
def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=MASTER_KEY, max_retries=0, timeout=60)


def test_names_with_control_characters_or_beyond_256_chars_are_refused(
    gw: GatewayProcess, client: openai.OpenAI,
) -> None:
    for name in ("sim/gpt\r\nx-injected: 1", "sim/a\x00b", "chat\t", "sim/" + "m" * 253):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model=name, messages=MESSAGES)
        assert refused.value.body["param"] == "model"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="sim/e\nmbed", input="x")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="chat", messages=MESSAGES,
                                       extra_body={"models": ["chat"] * 17})
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="chat", messages=MESSAGES,
                                       extra_body={"models": ["sim/x\ny"]})
    claude = anthropic.Anthropic(base_url=gw.root_url, api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(model="sim/a\r\nb", max_tokens=5, messages=MESSAGES)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="x" * 300, input="hi")
    # At the bounds, names still work.
    ok = client.chat.completions.create(model="sim/" + "m" * 252, messages=MESSAGES)
    assert ok.choices[0].message.content
    ok = client.chat.completions.create(model="chat", messages=MESSAGES,
                                        extra_body={"models": ["echo"] * 16})
    assert ok.choices[0].message.content


@pytest.mark.timeout(180)
def test_refused_huge_names_do_not_grow_memory_and_metrics_stay_small(
    gw: GatewayProcess, client: openai.OpenAI,
) -> None:
    for _ in range(20):  # warm up: the allocator's and aiohttp's steady state
        client.chat.completions.create(model="chat", messages=MESSAGES)
    before = _rss_mb(gw.proc.pid)

    def attack(i: int) -> int:
        name = ("sim/" if i % 2 else "nope/") + f"{i}-" + "n" * 1_000_000
        try:
            client.chat.completions.create(model=name, messages=MESSAGES)
        except openai.APIStatusError as exc:
            return exc.status_code
        return 200

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(attack, range(200)))
    assert set(statuses) == {400}
    # 500k fallback names: refused, not walked.
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="chat", messages=MESSAGES,
                                       extra_body={"models": ["chat"] * 500_000})

    # Many distinct client-chosen names that succeed: labels are capped.
    for i in range(3 * LABEL_CAP):
        client.chat.completions.create(model=f"sim/model-{i}", messages=MESSAGES)
    after = _rss_mb(gw.proc.pid)
    assert after - before < 120, (before, after)  # was +870 MB

    status, body = _scrape(gw, MASTER_KEY)
    assert status == 200
    text = body.decode()
    groups = set(re.findall(r'model_group="([^"]*)"', text))
    assert "_other" in groups and "chat" in groups
    assert len([g for g in groups if g.startswith("sim/")]) <= LABEL_CAP
    deployments = set(re.findall(r'deployment="([^"]*)"', text))
    assert len(deployments) <= LABEL_CAP + 10
    assert len(body) < 1_000_000


def test_metrics_protection_is_configurable(gw: GatewayProcess) -> None:
    assert _scrape(gw, None)[0] == 401
    assert _scrape(gw, "wrong-key-0123456789")[0] == 401
    assert _scrape(gw, MASTER_KEY)[0] == 200
    with SimServer(api_key=SIM_KEY) as sim, GatewayProcess(
            gateway_config(sim, metrics={"enabled": False}), {"SIM_KEY": SIM_KEY}) as off:
        assert _scrape(off, None)[0] == 404


def test_metrics_auth_admin_needs_a_master_key(tmp_path: Path) -> None:
    from polyroute.config import ConfigError, load_config

    path = tmp_path / "polyroute.yaml"
    path.write_text("metrics:\n  auth: admin\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"metrics\.auth"):
        load_config(str(path), {})
    path.write_text("auth:\n  master_key: ${M}\nmetrics:\n  auth: admin\n"
                    "server:\n  header_timeout_s: 3\n  max_connections_per_ip: 0\n",
                    encoding="utf-8")
    config = load_config(str(path), {"M": MASTER_KEY})
    assert config.metrics.auth == "admin" and config.metrics.max_model_labels == 200
    assert config.server.header_timeout_s == 3 and config.server.max_connections_per_ip == 0
    assert config.server.max_connections == 8192
