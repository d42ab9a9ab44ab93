"""What a cascade asks of an answer before keeping it: pure checks on text and wire bytes.

Every function here is a pure reading of an answer; the cascade (``polyroute.engine.cascade``)
decides what to call upstream (a second sample, a verifier) and when. The same functions score
the shipped routing data offline (:mod:`.cascade_eval`), so what is measured there is what runs
here.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter

import msgspec

from polyroute.model.chat import ChatResponse


class _TokenLogprob(msgspec.Struct):
    logprob: float


class _Logprobs(msgspec.Struct):
    content: list[_TokenLogprob] | None = None


class _Choice(msgspec.Struct):
    logprobs: _Logprobs | None = None


class _Body(msgspec.Struct):
    choices: list[_Choice] = msgspec.field(default_factory=list)


_logprobs_decoder = msgspec.json.Decoder(_Body)
_WORD = re.compile(r"\w+")
_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n(.*)\n```\s*$", re.DOTALL)
YES_NO_QUESTION = (
    "Here is a request and a proposed answer to it.\n\n<request>\n{question}\n</request>\n\n"
    "<answer>\n{answer}\n</answer>\n\nIs the proposed answer correct and complete? "
    "Reply with one word: yes or no.")


def answer_text(response: ChatResponse) -> str:
    """The first choice's text; a tool call's arguments when it answered with tools."""
    if not response.choices:
        return ""
    message = response.choices[0].message
    content = message.content
    if isinstance(content, str):
        text = content
    elif content is None:
        text = ""
    else:
        text = "".join(p.text or "" for p in content if p.type == "text")
    if not text and message.tool_calls:
        text = "\n".join(c.function.arguments or "" for c in message.tool_calls
                          if c.function is not None)
    return text


def token_confidence(raw: bytes | None) -> float | None:
    """The geometric mean probability of the first choice's tokens, read from an OpenAI
    chat-completions body (``choices[0].logprobs.content[].logprob``: OpenAI, vLLM,
    llama.cpp's server and the simulator all send this shape). None: the body carries none
    (another protocol, or a server that ignored ``logprobs``)."""
    if not raw:
        return None
    try:
        body = _logprobs_decoder.decode(raw)
    except msgspec.DecodeError:
        return None
    if not body.choices or body.choices[0].logprobs is None:
        return None
    tokens = body.choices[0].logprobs.content
    if not tokens:
        return None
    return math.exp(sum(t.logprob for t in tokens) / len(tokens))


def normalised_words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def agreement(first: str, second: str) -> float:
    """How far two answers say the same: 1.0 when their words are equal, else the F1 of
    their word multisets (SQuAD's answer overlap). Cheap, order-blind, and honest about
    what it is: it sees wording, so two right answers phrased apart score low."""
    a, b = normalised_words(first), normalised_words(second)
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    common = sum((Counter(a) & Counter(b)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(b)
    return 2 * precision * recall / (precision + recall)


def is_json(text: str) -> bool:
    """The answer parses as JSON; one Markdown code fence around it is allowed."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced is not None:
        stripped = fenced.group(1)
    if not stripped:
        return False
    try:
        json.loads(stripped)
    except ValueError:
        return False
    return True


def matches(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None


def verifier_says_yes(reply: str) -> bool:
    words = normalised_words(reply)
    return bool(words) and words[0] == "yes"
