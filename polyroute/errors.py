"""One error tree for the whole gateway.

    GatewayError                      status, OpenAI error ``type`` and ``code``, ``trigger``
    ├── ClientError                   the request is wrong; never retried anywhere
    │   ├── InvalidRequest            400
    │   ├── AuthenticationFailed      401
    │   ├── PermissionDenied          403
    │   │   └── PolicyViolation       403  a data-governance rule refused the request
    │   ├── ModelNotFound             404
    │   ├── NotFound                  404  an admin API object (key, team, org)
    │   ├── PayloadTooLarge           413
    │   ├── RateLimited               429  the caller's own RPM/TPM/concurrency limit
    │   └── BudgetExceeded            429  the caller's (key, team, org) budget is spent
    ├── UpstreamError                 a deployment failed; carries which one     trigger
    │   ├── UpstreamConnectError      could not connect / connection reset       connect
    │   ├── UpstreamTimeout           no (first) answer in time, or a stall      timeout
    │   ├── UpstreamRateLimited       429, with the Retry-After it gave           rate_limited
    │   ├── UpstreamUnavailable       5xx, 529                                    unavailable
    │   ├── UpstreamAuthError         the gateway's key was refused               auth
    │   ├── UpstreamModelNotFound     the upstream does not know the model        not_found
    │   ├── UpstreamProtocolError     an answer we cannot parse                   protocol
    │   │   └── AnswerDiverged        a regenerated answer differs from what was sent
    │   └── UpstreamRejected          4xx: the upstream refused this request      –
    │       ├── ContextWindowExceeded                                             context_window
    │       └── ContentFiltered                                                   content_filter
    ├── NoDeploymentAvailable         every circuit is open: nothing was tried
    ├── ServiceUnavailable            503: a decision needs a store (keys, limits) that is down
    ├── StreamInterrupted             the upstream failed after the client got bytes
    └── AllDeploymentsFailed          every candidate failed; wraps their errors

``trigger`` names the error's class for failover decisions: a group fails over after an error
whose trigger is in its ``failover_on`` list, so the attempt loop never inspects status codes.
``transient`` marks the errors worth retrying on the same deployment (after a backoff) and
counting against its circuit breaker. Lower-library exceptions are mapped into this tree at the
adapter boundary (``raise ... from exc``).
"""

from __future__ import annotations

import re


class GatewayError(Exception):
    status: int = 500
    type: str = "api_error"
    code: str | None = None
    trigger: str | None = None
    transient: bool = False
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    @property
    def error_class(self) -> str:
        """A stable label for metrics: the class name in snake case."""
        name = type(self).__name__
        return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


class ClientError(GatewayError):
    status = 400
    type = "invalid_request_error"


class InvalidRequest(ClientError):
    pass


_AT_PATH = re.compile(r" - at `\$\.?([^`]*)`$")


def invalid_request(message: str) -> InvalidRequest:
    """A msgspec validation message as a 400 whose ``param`` names the field."""
    match = _AT_PATH.search(message)
    param = match.group(1) if match else None
    problem = _AT_PATH.sub("", message)
    missing = re.match(r"Object missing required field `(.+)`", problem)
    if missing:
        field = f"{param}.{missing.group(1)}" if param else missing.group(1)
        return InvalidRequest(f"Missing required parameter: '{field}'.", param=field)
    where = f" at '{param}'" if param else ""
    return InvalidRequest(f"Invalid value{where}: {problem}.", param=param or None)


class AuthenticationFailed(ClientError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(ClientError):
    status = 403
    type = "permission_error"


class PolicyViolation(PermissionDenied):
    """A data-governance policy (issue 11) refused the request; the message names the scope
    and the rule."""

    code = "policy_violation"


class ModelNotFound(ClientError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class NotFound(ClientError):
    status = 404
    code = "not_found"


class PayloadTooLarge(ClientError):
    status = 413
    code = "request_too_large"


class RateLimited(ClientError):
    """The caller's own limit (RPM, TPM, concurrent requests), not an upstream's 429."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class BudgetExceeded(ClientError):
    """A budget of the caller's key, team or organisation would be exceeded. OpenAI answers a
    spent quota with 429 ``insufficient_quota``; so does polyroute."""

    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamError(GatewayError):
    status = 502
    trigger: str | None = "unavailable"
    transient = True
    client_caused = False
    """Set when the client caused it (a deadline it chose tighter than the group's): never
    evidence against the deployment's health."""

    def __init__(
        self,
        message: str,
        *,
        deployment: str = "",
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, status=status)
        self.deployment = deployment
        self.retry_after = retry_after


class UpstreamConnectError(UpstreamError):
    code = "upstream_connect_error"
    trigger = "connect"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"
    trigger = "timeout"


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    trigger = "rate_limited"


class UpstreamUnavailable(UpstreamError):
    status = 503
    type = "api_error"
    trigger = "unavailable"


class UpstreamAuthError(UpstreamError):
    """The upstream refused the gateway's credentials: an operator problem, not the client's.
    Never retried with the same key; it counts against the deployment's circuit."""

    status = 502
    code = "upstream_authentication_failed"
    trigger = "auth"
    transient = False


class UpstreamModelNotFound(UpstreamError):
    code = "upstream_model_not_found"
    trigger = "not_found"
    transient = False


class UpstreamProtocolError(UpstreamError):
    code = "upstream_protocol_error"
    trigger = "protocol"


class AnswerDiverged(UpstreamProtocolError):
    """Resuming a broken stream by regenerating it: this candidate's answer does not start
    with the text the client already has, so it cannot be spliced on. Not the deployment's
    fault, so not held against its circuit; the next candidate is tried."""

    code = "answer_diverged"
    transient = False


class UpstreamRejected(UpstreamError):
    """The upstream refused this request itself: the same request would fail anywhere."""

    status = 400
    type = "invalid_request_error"
    trigger: str | None = None
    transient = False


class ContextWindowExceeded(UpstreamRejected):
    code = "context_length_exceeded"
    trigger = "context_window"


class ContentFiltered(UpstreamRejected):
    code = "content_policy_violation"
    trigger = "content_filter"


class NoDeploymentAvailable(GatewayError):
    """Every candidate's circuit is open; nothing was sent. Retry-After says when one reopens."""

    status = 503
    code = "no_deployment_available"

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(GatewayError):
    """A decision needs a store that is down (the key store for a key not yet cached, the
    shared limits of a fail-closed team). Never used for a key the gateway can vouch for."""

    status = 503
    code = "service_unavailable"

    def __init__(self, message: str, retry_after: float | None = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StreamInterrupted(GatewayError):
    status = 502
    code = "stream_interrupted"


class AllDeploymentsFailed(GatewayError):
    """Every candidate failed. Status and type are the last error's, the message lists all."""

    def __init__(self, group: str, errors: list[UpstreamError]) -> None:
        last = errors[-1]
        self.retry_after = last.retry_after
        detail = "; ".join(f"{e.deployment}: {e.message}" for e in errors)
        plural = "deployment" if len(errors) == 1 else f"all {len(errors)} deployments"
        super().__init__(
            f"{plural} of model '{group}' failed: {detail}",
            param=last.param,
            code=last.code,
            status=last.status,
        )
        self.type = last.type
        self.errors = errors
