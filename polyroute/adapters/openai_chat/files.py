"""OpenAI's Files and Batch APIs, moved as bytes: what polyroute's ``/v1/files`` and
``/v1/batches`` pass through to an OpenAI-protocol or Azure OpenAI upstream. Meaning (whose
object is whose, what a batch may cost) lives in :mod:`polyroute.engine.batches`."""

from __future__ import annotations

import re
import uuid

from polyroute.adapters.azure_openai.urls import account_url
from polyroute.adapters.client import UpstreamClient
from polyroute.adapters.openai_chat import translate
from polyroute.model.upstream import Endpoint

PROTOCOLS = frozenset({"openai", "azure", "openai_responses"})
"""The protocols whose servers have the Files and Batch APIs (``openai_responses`` is
OpenAI's, or Azure's v1 API, too)."""
_CONNECT_S = 10.0
_TOTAL_S = 300.0
"""An upload or a result file may be large (OpenAI takes up to 200 MB per batch file)."""
_UNSAFE = re.compile(r'["\r\n\\]')


def url(endpoint: Endpoint, path: str) -> str:
    if endpoint.protocol == "azure":
        return account_url(endpoint, path)
    return endpoint.base_url + path


class FilesClient:
    def __init__(self, client: UpstreamClient) -> None:
        self._client = client

    async def call(self, endpoint: Endpoint, deployment: str, method: str, path: str,
                   body: bytes | None = None) -> bytes:
        """The whole body of a 200 answer; any other status raised as the vendor's error."""
        return await self._client.fetch(
            method, url(endpoint, path), body=body, headers=endpoint.request_headers,
            connect_s=_CONNECT_S, deployment=deployment,
            errors=translate.error_from_response, total_s=_TOTAL_S)

    async def upload(self, endpoint: Endpoint, deployment: str, filename: str, purpose: str,
                     content: bytes) -> bytes:
        boundary = uuid.uuid4().hex
        body = multipart(boundary, filename, purpose, content)
        headers = {**endpoint.request_headers,
                   "Content-Type": f"multipart/form-data; boundary={boundary}"}
        return await self._client.fetch(
            "POST", url(endpoint, "/files"), body=body, headers=headers,
            connect_s=_CONNECT_S, deployment=deployment,
            errors=translate.error_from_response, total_s=_TOTAL_S)


def multipart(boundary: str, filename: str, purpose: str, content: bytes) -> bytes:
    """The form OpenAI's ``POST /files`` takes: ``purpose`` and ``file``."""
    name = _UNSAFE.sub("_", filename) or "upload.jsonl"
    return b"".join((
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n"
        f"{purpose}\r\n".encode(),
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
        f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
        content,
        f"\r\n--{boundary}--\r\n".encode(),
    ))
