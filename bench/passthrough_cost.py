"""CPU per request of the same-dialect paths against translation, on the pure functions only
(no sockets): what passthrough saves or costs inside the gateway for a Responses client on a
Responses upstream and a Converse client on a Bedrock upstream.

    python bench/passthrough_cost.py [--n 20000]

Prints microseconds per call (best of 5 rounds); run it on a quiet machine."""

from __future__ import annotations

import argparse
import json
import timeit

import msgspec

from polyroute.adapters.bedrock_converse import native as bedrock_native
from polyroute.adapters.bedrock_converse import translate as bedrock_translate
from polyroute.adapters.openai_responses import translate as responses_translate
from polyroute.adapters.openai_responses.stream import StreamTranslator
from polyroute.model.chat import ChatChunk
from polyroute.model.upstream import Quirks
from polyroute.surface.bedrock.decode import converse_request
from polyroute.surface.responses.decode import responses_request
from polyroute.surface.responses.encode import StreamEncoder
from polyroute.surface.responses.relay import StreamRelay

PROMPT = "Summarise the following paragraph in two sentences. " * 8
RESPONSES_BODY = json.dumps({
    "model": "gpt", "instructions": "Be brief.", "max_output_tokens": 300,
    "input": [{"role": "user", "content": PROMPT}],
    "tools": [{"type": "function", "name": "lookup", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}}}],
    "metadata": {"team": "search"}, "store": False}).encode()
CONVERSE_BODY = json.dumps({
    "messages": [{"role": "user", "content": [{"text": PROMPT}]}],
    "system": [{"text": "Be brief."}], "inferenceConfig": {"maxTokens": 300}}).encode()
DELTA = (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
         b'"sequence_number":5,"item_id":"msg_1","output_index":0,"content_index":0,'
         b'"delta":" word","logprobs":[]}\n\n')


def best(n: int, call: object) -> float:
    return min(timeit.repeat(call, number=n, repeat=5)) / n * 1e6  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    n = parser.parse_args().n
    quirks = Quirks()

    def responses_passthrough() -> bytes:
        return responses_translate.request_body(responses_request(RESPONSES_BODY), "gpt-4o",
                                                quirks, "d")

    def responses_translated() -> bytes:
        request = responses_request(RESPONSES_BODY)
        request.native = None
        return responses_translate.request_body(request, "gpt-4o", quirks, "d")

    def converse_passthrough() -> bytes | None:
        return bedrock_native.forwarded_body(converse_request(CONVERSE_BODY, "m", False))

    def converse_translated() -> bytes:
        request = converse_request(CONVERSE_BODY, "m", False)
        request.native = None
        return bedrock_translate.chat_body(request, quirks, "d")

    data = DELTA.partition(b"data: ")[2].rstrip()
    relaying, translating = StreamTranslator("d"), StreamTranslator("d")
    relay, encoder = StreamRelay("gpt"), StreamEncoder("gpt")
    relay.feed([ChatChunk(native=DELTA)])
    encoder.start()

    def event_relayed() -> bytes:
        return relay.feed(relaying.chunks(data, DELTA))

    def event_translated() -> bytes:
        return encoder.feed(translating.chunks(data, None))

    rows = [("Responses request: passthrough (decode + splice)", responses_passthrough),
            ("Responses request: translated (decode + encode)", responses_translated),
            ("Converse request: passthrough (decode + body as is)", converse_passthrough),
            ("Converse request: translated (decode + chat_body)", converse_translated),
            ("Responses text delta event: relayed", event_relayed),
            ("Responses text delta event: decoded and re-encoded", event_translated)]
    timings = {label: best(n, call) for label, call in rows}
    for label, call in rows:  # a second pass: the machine's load changes under the first
        timings[label] = min(timings[label], best(n, call))
    for label, _ in rows:
        print(f"{label:55s} {timings[label]:7.2f} µs")
    assert msgspec  # the decoders above are msgspec's


if __name__ == "__main__":
    main()
