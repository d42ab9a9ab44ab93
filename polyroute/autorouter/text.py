"""The text the router reads from a chat request."""

from __future__ import annotations

from collections.abc import Iterable

from polyroute.model.chat import Message


def prompt_text(messages: Iterable[Message]) -> str:
    """The user turns' text, oldest first. System prompts are left out: they are usually the
    same boilerplate for every request of an application and say little about how hard this
    one is; the training prompts carry none either. The featurizer reads the head and the tail,
    so the latest turn weighs most."""
    parts: list[str] = []
    for message in messages:
        if message.role != "user" or message.content is None:
            continue
        if isinstance(message.content, str):
            parts.append(message.content)
        else:
            parts += [p.text for p in message.content if p.type == "text" and p.text]
    return "\n\n".join(parts)


HEAD_CHARS = 256
TAIL_CHARS = 1024


def visible_text(prompt: str) -> str:
    """The head and the tail of ``prompt``: what the featurizer reads, and what the request
    log keeps (here, not in the numpy featurizer, so that the gateway need not import it)."""
    if len(prompt) <= HEAD_CHARS + TAIL_CHARS:
        return prompt
    return prompt[:HEAD_CHARS] + "\n…\n" + prompt[-TAIL_CHARS:]
