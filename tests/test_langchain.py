"""langchain-openai's ChatOpenAI, a widely used client, works against the gateway."""

from __future__ import annotations

from langchain_openai import ChatOpenAI

from polyroute.sim.settings import DEFAULT_TEXT
from tests.support.gateway import GatewayProcess


def test_invoke_and_stream(gateway: GatewayProcess) -> None:
    llm = ChatOpenAI(base_url=gateway.base_url, api_key="unused", model="chat",  # type: ignore[arg-type]
                     max_retries=0)
    assert llm.invoke("Say hello.").content == DEFAULT_TEXT
    streamed = "".join(str(chunk.content) for chunk in llm.stream("Say hello."))
    assert streamed == DEFAULT_TEXT


def test_tool_binding(gateway: GatewayProcess) -> None:
    def get_weather(location: str) -> str:
        """Get the weather for a location."""
        return "sunny"

    llm = ChatOpenAI(base_url=gateway.base_url, api_key="unused", model="chat",  # type: ignore[arg-type]
                     max_retries=0).bind_tools([get_weather], tool_choice="required")
    message = llm.invoke("Weather in Paris?")
    assert message.tool_calls[0]["name"] == "get_weather"  # type: ignore[attr-defined]
