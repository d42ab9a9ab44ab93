"""Writing response bodies, including the faults that damage a body after its headers."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Mapping

from aiohttp import web

from polyroute.sim.connection import close_connection
from polyroute.sim.faults import Fault, FaultName
from polyroute.sim.stats import SimStats

SENT: contextvars.ContextVar[bytearray | None] = contextvars.ContextVar("sim_sent",
                                                                       default=None)
"""The body bytes the current request's handler wrote (set by the recording middleware), so
tests can check a gateway relayed exactly what the simulator sent."""


def _sent(data: bytes) -> None:
    sent = SENT.get()
    if sent is not None:
        sent += data


def utf8_split_points(data: bytes) -> list[int]:
    """Offsets that fall inside multi-byte UTF-8 sequences, one per such character.

    Splitting right after each lead byte leaves every write but the last ending on
    an incomplete character. Pure ASCII is split in the middle, so the fault still
    shows up as a line that arrives in two pieces.
    """
    points = [index + 1 for index, byte in enumerate(data) if byte >= 0xC0]
    if not points and len(data) > 1:
        points = [len(data) // 2]
    return points


async def write_split(response: web.StreamResponse, data: bytes, gap_s: float) -> None:
    start = 0
    for point in utf8_split_points(data):
        await response.write(data[start:point])
        # The pause keeps the kernel from coalescing the pieces into one segment.
        await asyncio.sleep(gap_s)
        start = point
    await response.write(data[start:])


async def write_body(response: web.StreamResponse, data: bytes, fault: Fault | None) -> None:
    _sent(data)
    if fault is not None and fault.name is FaultName.SPLIT_UTF8:
        await write_split(response, data, fault.param("gap_ms") / 1000)
    else:
        await response.write(data)


async def send_json_body(
    request: web.Request,
    payload: bytes,
    fault: Fault | None,
    stats: SimStats,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    """Send a non-streaming JSON body; body faults act on its bytes instead of on chunks."""
    name = fault.name if fault is not None else None
    if name is FaultName.SLOW_FIRST_TOKEN:
        assert fault is not None
        await asyncio.sleep(fault.param("delay_ms") / 1000)
    if name is FaultName.MALFORMED_CHUNK:
        payload = payload[: len(payload) // 2]
    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = "application/json"
    response.content_length = len(payload)
    await response.prepare(request)
    if name in (FaultName.STREAM_CUT, FaultName.STREAM_STALL):
        assert fault is not None
        await response.write(payload[: len(payload) // 2])
        if name is FaultName.STREAM_STALL:
            await asyncio.sleep(fault.param("hold_s"))
        stats.responses_cut_by_sim += 1
        close_connection(request)
        return response
    await write_body(response, payload, fault)
    return response
