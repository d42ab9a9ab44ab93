"""The simulator's faults as Anthropic would show them."""

from __future__ import annotations

from polyroute.sim.anthropic.errors import AnthropicError, overloaded
from polyroute.sim.faults import Fault, FaultName

_REQUESTS_PER_MINUTE = 50


def fault_error(fault: Fault, *, prompt_tokens: int) -> AnthropicError | None:
    """The error response a fault stands for on /v1/messages, or None."""
    name = fault.name
    if name in (FaultName.RATE_LIMIT, FaultName.RATE_LIMIT_NO_RETRY_AFTER):
        headers = {
            "anthropic-ratelimit-requests-limit": str(_REQUESTS_PER_MINUTE),
            "anthropic-ratelimit-requests-remaining": "0",
        }
        if name is FaultName.RATE_LIMIT:
            retry_after = fault.param("retry_after")
            headers["retry-after"] = str(int(retry_after)) if retry_after.is_integer() \
                else f"{retry_after:g}"
        return AnthropicError(
            429, "This request would exceed the rate limit for your organization "
            f"(org-polyroute-sim) of {_REQUESTS_PER_MINUTE} requests per minute. For details, "
            "refer to: https://docs.claude.com/en/api/rate-limits. You can see the response "
            "headers for current usage. Please reduce the prompt length or the maximum tokens "
            "requested, or try again later. You may also contact sales at "
            "https://www.anthropic.com/contact-sales to discuss your options for a rate limit "
            "increase.", type="rate_limit_error", headers=headers)
    if name in (FaultName.OVERLOADED, FaultName.UNAVAILABLE):
        return overloaded()
    if name is FaultName.SERVER_ERROR:
        return AnthropicError(500, "Internal server error", type="api_error")
    if name is FaultName.CONTEXT_LENGTH_EXCEEDED:
        limit = fault.int_param("limit")
        used = max(prompt_tokens, limit + 1)
        return AnthropicError(400, f"prompt is too long: {used} tokens > {limit} maximum")
    return None
