"""What a request costs, from the vendor's usage fields and a price per 1M tokens.

Money on the hot path is integer nano-dollars (1e-9 USD): sums are exact and Redis adds them
with INCRBY. Worst cases round up and costs round up, so a reservation always covers the
cost it stands for; the ledger stores dollars.
"""

from __future__ import annotations

import math

from polyroute.model.price import Price
from polyroute.model.usage import Usage

NANOS_PER_USD = 1_000_000_000
_PER_TOKEN = NANOS_PER_USD / 1_000_000  # a price per 1M tokens, per token, in nanos


def cost_usd(price: Price, usage: Usage) -> float:
    """Plain input, cached input, cache writes, output and reasoning, each at its own price."""
    cached = usage.cached_tokens
    written = usage.cache_creation_tokens
    plain_in = max(0, usage.prompt_tokens - cached - written)
    reasoning = min(usage.reasoning_tokens, usage.completion_tokens)
    plain_out = usage.completion_tokens - reasoning
    per_1m = (
        plain_in * price.input_per_1m
        + cached * _or(price.cached_input_per_1m, price.input_per_1m)
        + written * _or(price.cache_write_per_1m, price.input_per_1m)
        + plain_out * price.output_per_1m
        + reasoning * _or(price.reasoning_per_1m, price.output_per_1m)
    )
    return per_1m / 1_000_000


def to_nanos(usd: float) -> int:
    return math.ceil(usd * NANOS_PER_USD - 1e-6)


def worst_case_nanos(price: Price, input_tokens: int, output_tokens: int) -> int:
    """The most ``input_tokens`` in and ``output_tokens`` out can cost at ``price``: every
    input token at the dearer of plain input and cache write, every output token at the
    dearer of output and reasoning."""
    dear_in = max(price.input_per_1m, price.cache_write_per_1m or 0.0)
    dear_out = max(price.output_per_1m, price.reasoning_per_1m or 0.0)
    return math.ceil((input_tokens * dear_in + output_tokens * dear_out) * _PER_TOKEN)


def scaled(price: Price, factor: float) -> Price:
    """``price`` with every rate times ``factor`` (a batch's discount)."""
    def times(rate: float | None) -> float | None:
        return None if rate is None else rate * factor

    return Price(price.input_per_1m * factor, price.output_per_1m * factor,
                 times(price.cached_input_per_1m), times(price.cache_write_per_1m),
                 times(price.reasoning_per_1m),
                 per_unit=tuple((unit, usd * factor) for unit, usd in price.per_unit),
                 source=price.source)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
