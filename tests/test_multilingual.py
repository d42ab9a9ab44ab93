"""Text in any script passes through byte-exact, even when the upstream splits a multi-byte
UTF-8 character across TCP writes."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest

from tests.support.gateway import GatewayProcess

TEXTS = {
    "thai": "สวัสดีครับ ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "cjk": "你好，世界。日本語のテキスト、한국어 문장도 있습니다。",
    "emoji": "Family: 👨‍👩‍👧‍👦, flags 🇹🇭🇯🇵, skin tone 👋🏽 and 🧪✨",
    "rtl": "مرحبا بالعالم — שלום עולם ‏(mixed ltr)‏",
    "combining": "e\u0301 a\u030a Z\u0351\u0362 \U0001d518\U0001d52b\U0001d526",
}


@pytest.mark.parametrize("name", list(TEXTS))
@pytest.mark.parametrize("fault", ["", "@split_utf8"])
def test_streaming_is_byte_exact(gateway: GatewayProcess, name: str, fault: str) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    text = TEXTS[name]
    stream = client.chat.completions.create(
        model=f"sim/echo{fault}", messages=[{"role": "user", "content": text}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == text


async def test_raw_bytes_are_valid_utf8_events(gateway: GatewayProcess) -> None:
    text = "".join(TEXTS.values())
    body = json.dumps({"model": "sim/echo@split_utf8", "stream": True,
                       "messages": [{"role": "user", "content": text}]}, ensure_ascii=False)
    async with aiohttp.ClientSession() as session, session.post(
        gateway.base_url + "/chat/completions", data=body.encode()) as response:
        raw = await response.read()
    events = [e for e in raw.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    pieces = []
    for event in events[:-1]:
        assert event.startswith(b"data: ")
        chunk = json.loads(event[6:].decode("utf-8"))  # strict: each event is whole UTF-8
        pieces.extend(c["delta"].get("content") or "" for c in chunk["choices"])
    assert "".join(pieces) == text


def test_non_streaming_echo(gateway: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    text = "".join(TEXTS.values())
    reply = client.chat.completions.create(model="echo",
                                           messages=[{"role": "user", "content": text}])
    assert reply.choices[0].message.content == text
