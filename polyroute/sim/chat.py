"""POST /v1/chat/completions."""

from __future__ import annotations

import time

from aiohttp import web

from polyroute.sim.body_writer import send_json_body
from polyroute.sim.chat_stream import StreamHeader, stream_chat
from polyroute.sim.common_headers import openai_headers
from polyroute.sim.fault_responses import fault_response
from polyroute.sim.fault_selection import select_fault
from polyroute.sim.ids import SYSTEM_FINGERPRINT
from polyroute.sim.logprobs import reply_logprobs
from polyroute.sim.replies import Reply, build_reply, prompt_pieces, prompt_tokens
from polyroute.sim.request_schema import decode_chat_request
from polyroute.sim.response_schema import (
    ENCODER,
    AssistantMessage,
    ChatCompletion,
    Choice,
    FunctionCall,
    ToolCall,
    make_usage,
)
from polyroute.sim.state import get_state


def _message(reply: Reply) -> AssistantMessage:
    call = reply.tool_call
    if call is None:
        return AssistantMessage(content=reply.text)
    return AssistantMessage(
        content=None,
        tool_calls=[ToolCall(id=call.call_id, function=FunctionCall(call.name, call.arguments))],
    )


def completion_body(
    completion_id: str, created: int, model: str, replies: list[Reply], prompt: int,
    cached: int = 0, logprobs: int | None = None,
) -> bytes:
    """``logprobs``: None, or how many top alternatives each token lists (0..20)."""
    completion = ChatCompletion(
        id=completion_id,
        created=created,
        model=model,
        choices=[
            Choice(index=index, message=_message(reply), finish_reason=reply.finish_reason,
                   logprobs=None if logprobs is None else reply_logprobs(reply, logprobs))
            for index, reply in enumerate(replies)
        ],
        usage=make_usage(prompt, sum(reply.completion_tokens for reply in replies), cached),
        system_fingerprint=SYSTEM_FINGERPRINT,
    )
    return ENCODER.encode(completion)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = get_state(request)
    settings = state.settings
    chat = decode_chat_request(await request.read())
    # Replies are built before a fault is picked so that an invalid request does not
    # use up a server-side rule's `times`.
    replies = [
        build_reply(
            chat,
            chat.model,
            default_text=settings.text,
            chunk_tokens=settings.chunk_tokens,
            new_call_id=state.ids.tool_call_id,
        )
        for _ in range(chat.choice_count)
    ]
    model, fault = select_fault(request, state, chat.model)
    state.stats.record_selection(model, fault)
    prompt = prompt_tokens(chat)
    if fault is not None:
        early = await fault_response(
            request, fault, model=model, prompt_tokens=prompt, param="messages"
        )
        if early is not None:
            return early
    cached = state.prompt_cache.read(model, prompt_pieces(chat))
    completion_id = state.ids.completion_id()
    created = int(time.time())
    headers = openai_headers(state, model)
    if chat.streaming:
        tps = settings.tokens_per_second
        return await stream_chat(
            request,
            header=StreamHeader(completion_id, created, model, chat.include_usage, prompt,
                                cached),
            replies=replies,
            fault=fault,
            seconds_per_chunk=max(1, settings.chunk_tokens) / tps if tps > 0 else 0.0,
            stats=state.stats,
            headers=headers,
        )
    body = completion_body(completion_id, created, model, replies, prompt, cached,
                           (chat.top_logprobs or 0) if chat.logprobs else None)
    return await send_json_body(request, body, fault, state.stats, headers)
