"""POST /v1/messages and POST /v1/messages/count_tokens."""

from __future__ import annotations

from aiohttp import web

from polyroute.sim import errors as openai_errors
from polyroute.sim.anthropic.errors import invalid
from polyroute.sim.anthropic.faults import fault_error
from polyroute.sim.anthropic.reply import Answer, build_answer, count_prompt, prompt_usage
from polyroute.sim.anthropic.request import decode_messages_request
from polyroute.sim.anthropic.response import ENCODER, message_body
from polyroute.sim.anthropic.state import get_anthropic_state
from polyroute.sim.anthropic.stream import stream_message
from polyroute.sim.body_writer import send_json_body
from polyroute.sim.fault_responses import fault_response
from polyroute.sim.fault_selection import select_fault
from polyroute.sim.faults import Fault, FaultName
from polyroute.sim.state import get_state

# Faults that never reach the body: the connection is reset, or nothing is answered.
_CONNECTION_FAULTS = frozenset({FaultName.RESET_BEFORE_HEADERS, FaultName.NO_RESPONSE})


async def create_message(request: web.Request) -> web.StreamResponse:
    state, anthropic = get_state(request), get_anthropic_state(request)
    settings = state.settings
    message = decode_messages_request(await request.read())
    # The answer is built before a fault is picked, so an invalid request does not use up a
    # server-side rule's `times`.
    answer = build_answer(message, message.model, anthropic, default_text=settings.text,
                          chunk_tokens=settings.chunk_tokens)
    try:
        model, fault = select_fault(request, state, message.model)
    except openai_errors.ApiError as exc:
        raise invalid(exc.message) from None
    state.stats.record_selection(model, fault)
    if fault is not None:
        if fault.name in _CONNECTION_FAULTS:
            early = await fault_response(request, fault, model=model, prompt_tokens=0,
                                         param="messages")
            if early is not None:
                return early
        if fault.name is FaultName.STREAM_ERROR and not message.stream:
            fault = Fault(FaultName.OVERLOADED)  # without a stream, the error is the answer
        error = fault_error(fault, prompt_tokens=count_prompt(message))
        if error is not None:
            raise error
    prompt = prompt_usage(message, anthropic)
    if fault is not None and fault.name is FaultName.CONTENT_POLICY_VIOLATION:
        # Anthropic does not refuse with an HTTP error: the message stops with "refusal".
        answer = Answer([], None, "refusal", None, 1)
    message_id = anthropic.message_id()
    headers = {"request-id": anthropic.request_id(), "anthropic-organization-id":
               "00000000-0000-4000-8000-000000000000"}
    if message.stream:
        tps = settings.tokens_per_second
        return await stream_message(
            request, message_id=message_id, model=model, answer=answer, prompt=prompt,
            fault=fault, stats=state.stats, headers=headers,
            seconds_per_chunk=max(1, settings.chunk_tokens) / tps if tps > 0 else 0.0)
    body = message_body(message_id, model, answer, prompt)
    return await send_json_body(request, body, fault, state.stats, headers)


async def count_tokens(request: web.Request) -> web.Response:
    message = decode_messages_request(await request.read(), count_tokens=True)
    return web.Response(body=ENCODER.encode({"input_tokens": count_prompt(message)}),
                        content_type="application/json")


