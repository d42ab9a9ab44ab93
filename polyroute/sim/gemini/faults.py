"""The simulator's faults as Gemini shows them."""

from __future__ import annotations

from polyroute.sim.faults import Fault, FaultName
from polyroute.sim.gemini.errors import GeminiError

_QUOTA_FAILURE = {
    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
    "violations": [{
        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        "quotaDimensions": {"location": "global", "model": "sim"}, "quotaValue": "10"}],
}
_HELP = {"@type": "type.googleapis.com/google.rpc.Help", "links": [{
    "description": "Learn more about Gemini API quotas",
    "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}


def fault_error(fault: Fault, *, prompt_tokens: int) -> GeminiError | None:
    """The error response a fault stands for, or None when the fault is not an error status.
    (content_policy_violation is not an error here: Gemini answers 200 with a blocked
    prompt.)"""
    name = fault.name
    if name in (FaultName.RATE_LIMIT, FaultName.RATE_LIMIT_NO_RETRY_AFTER):
        details = [_QUOTA_FAILURE, _HELP]
        message = ("You exceeded your current quota, please check your plan and billing "
                   "details. For more information on this error, head to: "
                   "https://ai.google.dev/gemini-api/docs/rate-limits.")
        if name is FaultName.RATE_LIMIT:
            delay = fault.param("retry_after")
            text = str(int(delay)) if delay.is_integer() else f"{delay:g}"
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                            "retryDelay": f"{text}s"})
            message += f" Please retry in {text}s."
        return GeminiError(429, message, "RESOURCE_EXHAUSTED", details=details)
    if name is FaultName.SERVER_ERROR:
        return GeminiError(500, "An internal error has occurred. Please retry or report in "
                           "https://developers.generativeai.google/guide/troubleshooting",
                           "INTERNAL")
    if name in (FaultName.UNAVAILABLE, FaultName.OVERLOADED, FaultName.STREAM_ERROR):
        return GeminiError(503, "The model is overloaded. Please try again later.",
                           "UNAVAILABLE")
    if name is FaultName.CONTEXT_LENGTH_EXCEEDED:
        limit = fault.int_param("limit")
        used = max(prompt_tokens, limit + 1)
        return GeminiError(400, f"The input token count ({used}) exceeds the maximum number of "
                           f"tokens allowed ({limit}).", "INVALID_ARGUMENT")
    return None
