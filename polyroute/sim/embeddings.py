"""POST /v1/embeddings with vectors derived from a hash of each input."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

from aiohttp import web

from polyroute.sim import errors
from polyroute.sim.body_writer import send_json_body
from polyroute.sim.common_headers import openai_headers
from polyroute.sim.fault_responses import fault_response
from polyroute.sim.fault_selection import select_fault
from polyroute.sim.request_schema import decode_embedding_request
from polyroute.sim.response_schema import ENCODER, EmbeddingItem, EmbeddingList, EmbeddingUsage
from polyroute.sim.state import get_state
from polyroute.sim.tokens import count_tokens

MAX_DIMENSIONS = 16384
MAX_INPUTS = 2048


def embedding_vector(key: str, dimensions: int) -> list[float]:
    """A unit vector from SHAKE-256 of `key`, rounded to float32 like OpenAI's.

    SHAKE's output for fewer dimensions is a prefix of the longer one, so a
    `dimensions` request behaves like OpenAI's: a truncated, re-normalised vector.
    """
    raw = struct.unpack(f"<{dimensions}I", hashlib.shake_256(key.encode()).digest(4 * dimensions))
    values = [word / 2**31 - 1.0 for word in raw]
    norm = math.sqrt(math.fsum(value * value for value in values)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(value / norm for value in values))
    return list(struct.unpack(f"<{dimensions}f", packed))


def encode_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _is_token_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(token, int) and not isinstance(token, bool) for token in value
    )


def normalise_inputs(raw: Any) -> list[tuple[str, int]]:
    """Each input as (hash key, prompt tokens); token arrays count one token per id."""
    if isinstance(raw, str):
        items: list[Any] = [raw]
    elif _is_token_list(raw) and raw:
        items = [raw]
    elif isinstance(raw, list) and raw:
        items = raw
    else:
        raise _invalid_input()
    if len(items) > MAX_INPUTS:
        raise errors.ApiError(
            400, f"Invalid 'input': at most {MAX_INPUTS} inputs allowed.", param="input"
        )
    result: list[tuple[str, int]] = []
    for item in items:
        if isinstance(item, str):
            result.append((item, count_tokens(item)))
        elif _is_token_list(item) and item:
            result.append(("tokens:" + ",".join(map(str, item)), len(item)))
        else:
            raise _invalid_input()
    return result


def _invalid_input() -> errors.ApiError:
    return errors.ApiError(
        400,
        "'$.input' is invalid. Please check the API reference: "
        "https://platform.openai.com/docs/api-reference.",
        param="input",
    )


async def embeddings(request: web.Request) -> web.StreamResponse:
    state = get_state(request)
    settings = state.settings
    embed = decode_embedding_request(await request.read())
    inputs = normalise_inputs(embed.input)
    dimensions = embed.dimensions or settings.embedding_dimensions
    if not 1 <= dimensions <= MAX_DIMENSIONS:
        raise errors.ApiError(
            400,
            f"Invalid 'dimensions': must be between 1 and {MAX_DIMENSIONS}.",
            param="dimensions",
        )
    encoding = embed.encoding_format or "float"
    if encoding not in ("float", "base64"):
        raise errors.ApiError(
            400,
            f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.",
            param="encoding_format",
            code="invalid_value",
        )
    model, fault = select_fault(request, state, embed.model)
    state.stats.record_selection(model, fault)
    tokens = sum(count for _, count in inputs)
    if fault is not None:
        early = await fault_response(
            request, fault, model=model, prompt_tokens=tokens, param="input"
        )
        if early is not None:
            return early
    data: list[EmbeddingItem] = []
    for index, (key, _) in enumerate(inputs):
        vector = embedding_vector(key, dimensions)
        data.append(
            EmbeddingItem(
                index=index, embedding=encode_base64(vector) if encoding == "base64" else vector
            )
        )
    body = ENCODER.encode(
        EmbeddingList(data=data, model=model, usage=EmbeddingUsage(tokens, tokens))
    )
    return await send_json_body(request, body, fault, state.stats, openai_headers(state, model))
