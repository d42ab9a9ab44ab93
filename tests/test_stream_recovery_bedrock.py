"""Mid-stream recovery by continuation on Bedrock Converse (the simulator, SigV4-signed): the
backup continues the assistant prefix the client already has, through the openai SDK."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from polyroute.sim.settings import DEFAULT_TEXT
from polyroute.sim.tokens import count_tokens, split_tokens
from tests.support.gateway import GatewayProcess
from tests.support.sim import SimServer
from tests.test_bedrock_gateway import REGION, SECRET, aws_env

USER = [{"role": "user", "content": "Say hello."}]
CUT_AFTER = 3
SENT = "".join(split_tokens(DEFAULT_TEXT)[:CUT_AFTER])


@pytest.fixture(scope="module")
def sims() -> Iterator[tuple[SimServer, SimServer]]:
    with SimServer(api_key=SECRET) as sim, \
            SimServer(api_key=SECRET, tokens_per_second=100) as paced:
        yield sim, paced


@pytest.fixture(scope="module")
def gateway(sims: tuple[SimServer, SimServer],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    sim, paced = sims

    def bedrock(server: SimServer) -> dict[str, object]:
        return {"protocol": "bedrock", "base_url": server.root_url, "region": REGION}

    groups = {f"cont-{fault}": {"routing": "priority", "deployments": [
        {"provider": "paced", "model": f"claude-{fault}@{fault}:after_chunks={CUT_AFTER}",
         "name": "primary"},
        {"provider": "bedrock", "model": f"claude-{fault}-backup", "name": "backup",
         "priority": 1}]} for fault in ("stream_cut", "stream_error", "malformed_chunk")}
    config = {"providers": {"bedrock": bedrock(sim), "paced": bedrock(paced)},
              "model_groups": groups,
              "resilience": {"timeouts": {"stall_s": 1, "total_s": 20}},
              "storage": {"flush_interval_s": 0.05}}
    tmp = str(tmp_path_factory.mktemp("aws"))
    with GatewayProcess(config, env=aws_env(tmp), log_level="DEBUG") as gw:
        yield gw
        assert SECRET not in gw.log()


@pytest.mark.parametrize("fault", ["stream_cut", "stream_error", "malformed_chunk"])
def test_bedrock_continues_the_prefix(gateway: GatewayProcess, fault: str) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0, timeout=30)
    text, finishes, usage = "", [], None
    for chunk in client.chat.completions.create(  # type: ignore[call-overload]
            model=f"cont-{fault}", messages=USER, stream=True,
            stream_options={"include_usage": True}):
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert text == DEFAULT_TEXT and finishes == ["stop"]
    assert usage is not None  # the continuation billed only the rest of the answer
    assert usage.completion_tokens == -(-len(SENT) // 4) + count_tokens(DEFAULT_TEXT[len(SENT):])
    assert "resumed by continuation on backup" in gateway.log()
