"""Token and price arithmetic for sources that record no measured cost.

How a cost is estimated when the data has none (LLMRouter, RouteLLM, logged traffic without a
``cost`` field): ``input_tokens × price_in + output_tokens × price_out``, with

* ``input_tokens`` ≈ UTF-8 bytes / 4 — the usual rule of thumb for English under BPE tokenizers.
  Fitting the RouterBench slice's billed costs on such counts (prompt and response) recovers
  the list prices within 10 % for 8 of its 11 models; it undercounts non-Latin scripts;
* ``output_tokens`` = :data:`DEFAULT_OUTPUT_TOKENS`, one constant: answer lengths are not in
  these sources, and a per-model guess would be invented precision. Only the ratio between
  models matters for routing, and with equal output counts that ratio is the price ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_OUTPUT_TOKENS = 128
BYTES_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Price:
    """List price in USD per million tokens."""

    input_per_1m: float
    output_per_1m: float


# Prices for the models the shipped data names without a price of its own. The LLMRouter entries
# copy that repository's llm_candidates file so a directory without it still gets costs; the two
# RouteLLM models use the list prices of the time the data was made (OpenAI for GPT-4 Turbo,
# Together AI for Mixtral — RouterBench's billed Mixtral costs fit $0.59/$0.60 per 1M).
LIST_PRICES: dict[str, Price] = {
    "gpt-4-1106-preview": Price(10.0, 30.0),
    "mixtral-8x7b-instruct-v0.1": Price(0.6, 0.6),
    "qwen2.5-7b-instruct": Price(0.2, 0.2),
    "codegemma-7b": Price(0.2, 0.2),
    "gemma-2-9b-it": Price(0.1, 0.1),
    "llama-3.1-8b-instruct": Price(0.2, 0.2),
    "llama3-chatqa-1.5-8b": Price(0.2, 0.2),
    "mistral-7b-instruct-v0.3": Price(0.2, 0.2),
    "llama-3.3-nemotron-super-49b-v1": Price(0.9, 0.9),
    "llama-3.1-nemotron-51b-instruct": Price(0.9, 0.9),
    "llama3-chatqa-1.5-70b": Price(0.9, 0.9),
    "llama3-70b-instruct": Price(0.9, 0.9),
    "mixtral-8x22b-instruct-v0.1": Price(1.2, 1.2),
    "palmyra-creative-122b": Price(1.8, 1.8),
    "mistral-nemo-12b-instruct": Price(0.3, 0.3),
}

# Spellings of one model across sources. RouterBench's "mixtral-8x7b-chat" is the instruct model.
_ALIASES = {
    "mixtral-8x7b-chat": "mixtral-8x7b-instruct-v0.1",
}


def canonical_model(name: str) -> str:
    """One key per model across sources: lower case, organisation prefix dropped."""
    key = name.strip().lower().rsplit("/", 1)[-1]
    return _ALIASES.get(key, key)


def estimate_tokens(text: str) -> int:
    return max(1, -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN))


def estimate_cost(price: Price, input_tokens: int,
                  output_tokens: int = DEFAULT_OUTPUT_TOKENS) -> float:
    return (input_tokens * price.input_per_1m + output_tokens * price.output_per_1m) / 1e6


def list_price(model: str) -> Price | None:
    return LIST_PRICES.get(canonical_model(model))
