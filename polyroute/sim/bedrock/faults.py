"""The simulator's faults as Bedrock shows them."""

from __future__ import annotations

from polyroute.sim.bedrock.errors import BedrockError
from polyroute.sim.faults import Fault, FaultName

THROTTLED = "Too many requests, please wait before trying again."
UNAVAILABLE = "Bedrock is unable to process your request."


def fault_error(fault: Fault) -> BedrockError | None:
    """The error response a fault stands for, or None when it is not an error status.
    (Bedrock sends no Retry-After; its SDKs back off on their own.)"""
    name = fault.name
    if name in (FaultName.RATE_LIMIT, FaultName.RATE_LIMIT_NO_RETRY_AFTER):
        return BedrockError(429, "ThrottlingException", THROTTLED)
    if name is FaultName.SERVER_ERROR:
        return BedrockError(500, "InternalServerException",
                            "The server encountered an error processing your request.")
    if name in (FaultName.UNAVAILABLE, FaultName.OVERLOADED, FaultName.STREAM_ERROR):
        return BedrockError(503, "ServiceUnavailableException", UNAVAILABLE)
    if name is FaultName.CONTEXT_LENGTH_EXCEEDED:
        return BedrockError(400, "ValidationException", "Input is too long for requested "
                            "model.")
    return None
