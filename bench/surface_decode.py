"""CPU of the OpenAI surface's decode (body → ``ChatRequest``), per request: a plain chat,
and one with tools, a tool choice, a response format and an image part (typed once there
since issue 12 item 4).

    PYTHONPATH=<tree> python bench/surface_decode.py [--requests 20000] [--repeat 7]

Runs against any tree of polyroute; compare two trees in one sitting. Prints µs of CPU per
request, the least of ``--repeat`` runs (a shared machine only ever adds time)."""

from __future__ import annotations

import argparse
import json
import time

from polyroute.surface.openai.decode import chat_request

PLAIN = json.dumps({"model": "m", "messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hello there, how are you today?"}]}).encode()
TOOLS = json.dumps({
    "model": "m",
    "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}],
    "tools": [{"type": "function", "function": {
        "name": f"f{i}", "description": "d",
        "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}}}
        for i in range(3)],
    "tool_choice": "auto", "response_format": {"type": "json_object"}}).encode()


def measure(body: bytes, requests: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(requests):
            chat_request(body)
        best = min(best, (time.process_time() - start) / requests * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    for name, body in (("plain chat", PLAIN), ("tools, format, image", TOOLS)):
        print(f"{name}: {measure(body, args.requests, args.repeat):.2f} µs CPU/request")


if __name__ == "__main__":
    main()
