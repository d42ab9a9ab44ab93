"""One error tree for the whole gateway.

    GatewayError                      status, OpenAI error ``type`` and ``code``, ``failover``
    ├── ClientError                   the request is wrong; never retried anywhere
    │   ├── InvalidRequest            400
    │   ├── AuthenticationFailed      401
    │   ├── PermissionDenied          403
    │   ├── ModelNotFound             404
    │   └── PayloadTooLarge           413
    ├── UpstreamError                 a deployment failed; carries which one
    │   ├── UpstreamConnectError      could not connect / connection reset      (failover)
    │   ├── UpstreamTimeout           no answer in time                         (failover)
    │   ├── UpstreamRateLimited       429, with the Retry-After it gave          (failover)
    │   ├── UpstreamUnavailable       5xx                                        (failover)
    │   ├── UpstreamAuthError         the gateway's key was refused              (failover)
    │   ├── UpstreamProtocolError     an answer we cannot parse                  (failover)
    │   └── UpstreamRejected          4xx: the upstream refused this request     (no failover)
    │       ├── ContextWindowExceeded
    │       └── ContentFiltered
    ├── StreamInterrupted             the upstream failed after the client got bytes
    └── AllDeploymentsFailed          every candidate failed; wraps their errors

``failover`` says whether another deployment may succeed where this one failed: a property of
the error, so the attempt loop never inspects status codes itself. Lower-library exceptions are
mapped into this tree at the adapter boundary (``raise ... from exc``).
"""

from __future__ import annotations


class GatewayError(Exception):
    status: int = 500
    type: str = "api_error"
    code: str | None = None
    failover: bool = False

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


class AuthenticationFailed(ClientError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(ClientError):
    status = 403
    type = "permission_error"


class ModelNotFound(ClientError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLarge(ClientError):
    status = 413
    code = "request_too_large"


class UpstreamError(GatewayError):
    status = 502
    failover = True

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


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamUnavailable(UpstreamError):
    status = 503
    type = "api_error"


class UpstreamAuthError(UpstreamError):
    """The upstream refused the gateway's credentials: an operator problem, not the client's."""

    status = 502
    code = "upstream_authentication_failed"


class UpstreamProtocolError(UpstreamError):
    code = "upstream_protocol_error"


class UpstreamRejected(UpstreamError):
    status = 400
    type = "invalid_request_error"
    failover = False


class ContextWindowExceeded(UpstreamRejected):
    code = "context_length_exceeded"


class ContentFiltered(UpstreamRejected):
    code = "content_policy_violation"


class StreamInterrupted(GatewayError):
    status = 502
    code = "stream_interrupted"


class AllDeploymentsFailed(GatewayError):
    """Every candidate failed. Status and type are the last error's, the message lists all."""

    def __init__(self, group: str, errors: list[UpstreamError]) -> None:
        last = errors[-1]
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
