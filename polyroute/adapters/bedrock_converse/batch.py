"""Bedrock batch inference, moved as bytes: S3 objects (path-style ``PUT``/``GET``, signed for
``s3``) and the control plane's ``CreateModelInvocationJob``, ``GetModelInvocationJob`` and
``StopModelInvocationJob`` (signed for ``bedrock``). What a job's lines mean lives in
:mod:`polyroute.engine.batch_translation`; ownership and money in
:mod:`polyroute.engine.batches`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from yarl import URL

from polyroute.adapters.bedrock_converse.errors import error_from_response
from polyroute.adapters.bedrock_converse.spec import BedrockOptions, options
from polyroute.adapters.client import UpstreamClient
from polyroute.errors import (
    InvalidRequest,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)
from polyroute.model.upstream import Deployment

if TYPE_CHECKING:
    from polyroute.adapters.bedrock_converse.signing import Signer

PROTOCOL = "bedrock"
_CONNECT_S = 10.0
_TOTAL_S = 300.0
_NO_SUCH_KEY = "NoSuchKey"
_S3_AUTH = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                      "ExpiredToken", "InvalidToken"})
_XML_CODE = re.compile(r"<Code>([^<]{1,100})</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]{0,500})</Message>")


def batch_options(deployment: Deployment) -> BedrockOptions | None:
    """The deployment's Bedrock options when it can run batches (batch_s3_uri and
    batch_role_arn set), else None."""
    if deployment.endpoint.protocol != PROTOCOL:
        return None
    found = options(deployment.endpoint)
    return found if found.batch_s3_uri and found.batch_role_arn else None


class BedrockBatchClient:
    def __init__(self, client: UpstreamClient) -> None:
        self._client = client
        # Built by the first Bedrock batch call: the signer is botocore (~3 MB of every
        # worker's private memory), and this client is wired in whether or not any
        # deployment speaks Bedrock.
        self._signer: Signer | None = None

    async def put_object(self, deployment: Deployment, uri: str, body: bytes) -> None:
        await self._send(deployment, "PUT", self._s3_url(deployment, uri), body, "s3")

    async def get_object(self, deployment: Deployment, uri: str) -> bytes | None:
        """The object, or None when there is none (S3's ``NoSuchKey``)."""
        try:
            return await self._send(deployment, "GET", self._s3_url(deployment, uri), None,
                                    "s3")
        except UpstreamRejected as exc:
            if exc.code == _NO_SUCH_KEY:
                return None
            raise

    async def job(self, deployment: Deployment, method: str, path: str = "",
                  body: bytes | None = None) -> bytes:
        """``path`` after ``/model-invocation-job`` on the control plane's host."""
        url = f"{_control_plane(deployment.endpoint.base_url)}/model-invocation-job{path}"
        return await self._send(deployment, method, url, body, "bedrock")

    @staticmethod
    def job_path(job_arn: str) -> str:
        return "/" + quote(job_arn, safe="")

    def _s3_url(self, deployment: Deployment, uri: str) -> str:
        found = options(deployment.endpoint)
        root = found.batch_s3_endpoint or f"https://s3.{found.region}.amazonaws.com"
        if not uri.startswith("s3://"):
            raise UpstreamRejected(f"'{uri}' is not an s3:// location",
                                   deployment=deployment.name)
        return root.rstrip("/") + "/" + quote(uri.removeprefix("s3://"), safe="/")

    async def _send(self, deployment: Deployment, method: str, url: str, body: bytes | None,
                    service: str) -> bytes:
        endpoint, name = deployment.endpoint, deployment.name
        headers = {name_: value for name_, value in endpoint.request_headers.items()
                   if name_.lower() != "authorization"}  # a Bedrock API key is not for S3
        if body is not None and service == "bedrock":
            headers["Content-Type"] = "application/json"
        if self._signer is None:
            from polyroute.adapters.bedrock_converse.signing import Signer

            self._signer = Signer()
        signed = await self._signer.sign(method, url, body, headers,
                                         options(endpoint).region or "", name, service)
        return await self._client.fetch(
            method, URL(url, encoded=True), body=body, headers=signed, connect_s=_CONNECT_S,
            deployment=name, errors=error_from_response if service == "bedrock" else s3_error,
            total_s=_TOTAL_S)


def s3_error(status: int, body: bytes, headers: Mapping[str, str],
             deployment: str) -> UpstreamError:
    """S3's XML error (``<Error><Code>NoSuchKey</Code><Message>…``) → the gateway's."""
    text = body.decode("utf-8", "replace")
    found = _XML_CODE.search(text)
    code = found.group(1) if found else f"HTTP {status}"
    said = _XML_MESSAGE.search(text)
    message = f"S3 answered {code}: {said.group(1) if said else text[:200]}"
    if code in _S3_AUTH or status == 403:
        return UpstreamAuthError(message, deployment=deployment)
    if code == "SlowDown" or status == 429:
        return UpstreamRateLimited(message, deployment=deployment)
    if status >= 500:
        return UpstreamUnavailable(message, deployment=deployment)
    return UpstreamRejected(message, deployment=deployment, status=status, code=code)


def outside_quotas(records: int, size: int, found: BedrockOptions) -> InvalidRequest | None:
    """The refusal of a job of ``records`` records in a file of ``size`` bytes that the
    provider's Bedrock quotas would make Bedrock refuse (naming the quota); None: it fits."""
    if records < found.batch_min_records:
        return InvalidRequest(
            f"A Bedrock batch inference job needs at least {found.batch_min_records} records "
            f"(the provider's batch_min_records, Bedrock's 'Minimum number of records per "
            f"batch inference job'); this batch has {records}.", param="input_file_id",
            code="batch_too_small")
    if records > found.batch_max_records:
        return InvalidRequest(
            f"A Bedrock batch inference job takes at most {found.batch_max_records} records "
            f"(the provider's batch_max_records); this batch has {records}.",
            param="input_file_id", code="batch_too_large")
    if size > found.batch_max_file_bytes:
        return InvalidRequest(
            f"A Bedrock batch inference input file takes at most {found.batch_max_file_bytes} "
            f"bytes (the provider's batch_max_file_bytes); this batch's records are {size}.",
            param="input_file_id", code="batch_too_large")
    return None


def _control_plane(base_url: str) -> str:
    """``bedrock-runtime.<region>.amazonaws.com`` → ``bedrock.<region>.amazonaws.com``; any
    other base_url (a proxy, the simulator) serves both."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if host.startswith("bedrock-runtime"):
        return f"{parts.scheme}://{host.replace('bedrock-runtime', 'bedrock', 1)}"
    return base_url.rstrip("/")
