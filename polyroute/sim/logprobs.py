"""Token log-probabilities of a simulated answer, in OpenAI's ``choices[].logprobs`` shape.

The simulated model is sure of every token except question marks: an answer that repeats a
question (an echo model's) reads as unsure, one that does not reads as sure. Deterministic, so
a test can tell which answers a cascade's logprobs judge keeps.
"""

from __future__ import annotations

from polyroute.sim.replies import Reply
from polyroute.sim.response_schema import ChoiceLogprobs, TokenLogprob, TopLogprob
from polyroute.sim.tokens import split_tokens

SURE = -0.05
UNSURE = -2.5
_ALTERNATIVE = -6.0


def token_logprob(token: str) -> float:
    return UNSURE if "?" in token else SURE


def reply_logprobs(reply: Reply, top: int) -> ChoiceLogprobs | None:
    """None for a tool call: OpenAI sends ``logprobs: null`` for those."""
    if reply.tool_call is not None:
        return None
    content = []
    for token in split_tokens(reply.text):
        logprob = token_logprob(token)
        alternatives = [TopLogprob(token=token, logprob=logprob, bytes=list(token.encode()))]
        alternatives += [TopLogprob(token=f" alt{i}", logprob=_ALTERNATIVE - i,
                                    bytes=list(f" alt{i}".encode())) for i in range(top - 1)]
        content.append(TokenLogprob(token=token, logprob=logprob, bytes=list(token.encode()),
                                    top_logprobs=alternatives[:top]))
    return ChoiceLogprobs(content=content)
