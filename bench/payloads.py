"""Canned request and response bodies shared by every benchmark target.

Every target receives byte-identical requests and the mock upstream returns byte-identical
responses, so differences between targets come from the proxy alone.
"""

from __future__ import annotations

import json

# Gateways route these two names to the two upstream paths (see UPSTREAM_*_PATH): a static
# upstream cannot look inside the body, so streaming is told apart by URL instead.
MODEL = "bench-model"
STREAM_MODEL = "bench-model-stream"
UPSTREAM_MODEL = "gpt-4o-mini"

UPSTREAM_CHAT_PATH = "/v1/chat/completions"
UPSTREAM_STREAM_PATH = "/stream/v1/chat/completions"
GATEWAY_CHAT_PATH = "/v1/chat/completions"

CLIENT_KEY = "sk-bench"
UPSTREAM_KEY = "sk-upstream-bench"

_SYSTEM = (
    "You are a concise assistant for an online bookshop. Answer in at most three sentences, "
    "cite the order number when the user gives one, never invent stock levels, and ask a "
    "clarifying question when the request is ambiguous."
)
_USER = (
    "Hi! I ordered two paperbacks last Tuesday (order #A-20931) and the tracking page still "
    "says 'label created'. One of them was a gift for a birthday this Saturday. Can you tell "
    "me whether it is likely to arrive in time, and if not, what my options are for a refund "
    "or an express replacement? I'd also like to know whether I can change the delivery "
    "address to my office, which is in the same city."
)
_ANSWER = (
    "Your order #A-20931 has not left the warehouse yet, so Saturday delivery is unlikely. "
    "I can upgrade it to express shipping at no charge or cancel it for a full refund, and "
    "the address can still be changed to your office before dispatch."
)
_ANSWER_WORDS = _ANSWER.split(" ")

_ID = "chatcmpl-bench0000000000000000000001"
_CREATED = 1_730_000_000
_FINGERPRINT = "fp_bench0001"


def request_body(stream: bool) -> bytes:
    """A realistic ~1 KB OpenAI chat-completions request."""
    body: dict[str, object] = {
        "model": STREAM_MODEL if stream else MODEL,
        "messages": [
            {"role": "system", "content": _SYSTEM},
            {"role": "user", "content": _USER},
            {"role": "assistant", "content": "Sure, let me look that up for you."},
            {"role": "user", "content": "Thanks. Please be quick, I'm about to board a train."},
        ],
        "temperature": 0.2,
        "max_tokens": 256,
        "top_p": 1,
        "user": "customer-7f3a9c",
        "metadata": {"tenant": "bookshop", "channel": "web-chat"},
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":")).encode()


def _usage() -> dict[str, object]:
    completion_tokens = len(_ANSWER_WORDS) + 2
    return {
        "prompt_tokens": 187,
        "completion_tokens": completion_tokens,
        "total_tokens": 187 + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def completion_body() -> bytes:
    """The non-streaming chat.completion the mock upstream returns."""
    body = {
        "id": _ID,
        "object": "chat.completion",
        "created": _CREATED,
        "model": UPSTREAM_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": " ".join(_ANSWER_WORDS),
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(),
        "system_fingerprint": _FINGERPRINT,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _chunk(delta: dict[str, object], finish: str | None, usage: object = None) -> bytes:
    choices = (
        [] if usage else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    )
    chunk = {
        "id": _ID,
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": UPSTREAM_MODEL,
        "system_fingerprint": _FINGERPRINT,
        "choices": choices,
        "usage": usage,
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def _content_pieces(n: int) -> list[str]:
    # Group words so the stream has n content chunks, like a tokenizer emitting a few words each.
    per = -(-len(_ANSWER_WORDS) // n)
    groups = [_ANSWER_WORDS[i : i + per] for i in range(0, len(_ANSWER_WORDS), per)]
    return [(" " if i else "") + " ".join(g) for i, g in enumerate(groups)]


def sse_body(content_chunks: int = 16) -> bytes:
    """An OpenAI SSE stream: role chunk, content chunks, finish chunk, usage chunk, [DONE]."""
    parts = [_chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    parts += [_chunk({"content": piece}, None) for piece in _content_pieces(content_chunks)]
    parts.append(_chunk({}, "stop"))
    parts.append(_chunk({}, None, usage=_usage()))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def sse_event_count(body: bytes) -> int:
    return body.count(b"data: ")


if __name__ == "__main__":
    for name, data in (
        ("request", request_body(False)),
        ("stream request", request_body(True)),
        ("completion", completion_body()),
        ("sse", sse_body()),
    ):
        print(f"{name}: {len(data)} bytes")
    print(f"sse events: {sse_event_count(sse_body())}")
