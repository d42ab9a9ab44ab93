"""Stateful Responses (issue 16, item 4): the conversations polyroute keeps itself, so that
``previous_response_id`` works whichever vendor answered (a conversation begun on Anthropic
goes on on Gemini). What is kept per stored response: its owner (the key), the whole
conversation up to it as canonical messages, and the response object. Kept for
``storage.response_retention_s`` (30 days by default), then forgotten.

A stored answer is written in the background, but registered before the last bytes of the
answer leave, so a client that continues the conversation the moment it has the answer
finds it (on this replica; another replica reads the database, written a few milliseconds
later)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

import msgspec

from polyroute.errors import NotFound
from polyroute.model.chat import Message
from polyroute.storage.objects import ResponseStore

log = logging.getLogger("polyroute")

STORED_PREFIX = "resp_pr"
"""Ids of the responses polyroute stores; other ids belong to an upstream (OpenAI's own
stored responses), which only an ``openai_responses`` deployment can continue."""
_PURGE_EVERY_S = 60.0
_history = msgspec.json.Decoder(list[Message])
_encode = msgspec.json.Encoder().encode


def new_response_id() -> str:
    return f"{STORED_PREFIX}{uuid.uuid4().hex}"


class Conversations:
    def __init__(self, store: ResponseStore, retention_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._retention_s = retention_s
        self._clock = clock
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._purged_at = 0.0

    async def history(self, rid: str, owner: str) -> list[Message]:
        """The conversation up to and including ``rid``; NotFound unless ``owner`` stored it
        and it is still kept."""
        await self._written(rid)
        stored = await self._store.get(rid, owner, self._clock())
        if stored is None:
            raise NotFound(f"No response with id '{rid}' (polyroute keeps a response only "
                           "when it was created with store: true, by the same key, for "
                           "storage.response_retention_s).", param="previous_response_id")
        return _history.decode(stored.history)

    async def body(self, rid: str, owner: str) -> bytes:
        await self._written(rid)
        stored = await self._store.get(rid, owner, self._clock())
        if stored is None:
            raise NotFound(f"No response with id '{rid}'.", param="response_id")
        return stored.body.encode()

    async def delete(self, rid: str, owner: str) -> None:
        await self._written(rid)
        if not await self._store.delete(rid, owner, self._clock()):
            raise NotFound(f"No response with id '{rid}'.", param="response_id")

    def keep(self, rid: str, owner: str, messages: list[Message], body: bytes) -> None:
        """Store a response (``messages``: the conversation including its answer) without
        making the caller wait; readers of ``rid`` in this process wait for the write."""
        now = self._clock()
        history = _encode(messages).decode()
        purge = now - self._purged_at >= _PURGE_EVERY_S
        if purge:
            self._purged_at = now

        async def write() -> None:
            try:
                await self._store.add(rid, owner, now, now + self._retention_s, history,
                                      body.decode())
                if purge:
                    await self._store.purge(now)
            except Exception:  # the answer was given; only its continuation is lost
                log.exception("stateful Responses: could not store %s", rid)
            finally:
                self._pending.pop(rid, None)

        self._pending[rid] = asyncio.get_running_loop().create_task(write())

    async def _written(self, rid: str) -> None:
        task = self._pending.get(rid)
        if task is not None:
            await asyncio.shield(task)
