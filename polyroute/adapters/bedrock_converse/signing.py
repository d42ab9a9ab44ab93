"""SigV4 for Bedrock, with botocore's own signer and credential chain.

Credentials come from where every AWS SDK finds them — ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and the shared files, SSO,
web identity, container and instance roles — never from polyroute's config. Looking them up can
read files or call a metadata endpoint, so it runs once, off the event loop; temporary
credentials refresh themselves the same way when they near expiry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from botocore.session import Session

from polyroute.errors import UpstreamAuthError

SERVICE = "bedrock"
"""The signing name of bedrock-runtime, as in botocore's service model."""


class Signer:
    """One per adapter: it owns the resolved credentials."""

    def __init__(self) -> None:
        self._credentials: Credentials | None = None
        self._lock = asyncio.Lock()
        # botocore logs each canonical request at DEBUG, session token included: a gateway run
        # with --log-level DEBUG must not write credentials. An explicit level is respected.
        botocore_log = logging.getLogger("botocore")
        if botocore_log.level == logging.NOTSET:
            botocore_log.setLevel(logging.WARNING)

    async def sign(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str],
        region: str, deployment: str, service: str = SERVICE,
    ) -> dict[str, str]:
        """``headers`` plus ``Authorization``, ``X-Amz-Date`` (and ``X-Amz-Security-Token``)
        for a request sent exactly as given: same URL bytes, same headers, same body."""
        credentials = await self._frozen(deployment)
        request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
        if service == "s3":  # S3 signs the payload's hash as a header of its own
            request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body or b"").hexdigest()
        SigV4Auth(credentials, service, region).add_auth(request)
        return dict(request.headers.items())

    async def _frozen(self, deployment: str) -> ReadOnlyCredentials:
        credentials = self._credentials
        if credentials is None:
            async with self._lock:
                if self._credentials is None:
                    self._credentials = await asyncio.to_thread(_resolve)
                credentials = self._credentials
        if credentials is None:
            raise UpstreamAuthError(
                "no AWS credentials found for Bedrock: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or run with an IAM role)",
                deployment=deployment)
        if isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed():
            return await asyncio.to_thread(credentials.get_frozen_credentials)
        return credentials.get_frozen_credentials()


def _resolve() -> Credentials | None:
    credentials: Credentials | None = Session().get_credentials()
    return credentials
