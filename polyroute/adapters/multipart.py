"""A multipart/form-data body written from a :class:`~polyroute.model.media.Form`: the text
fields from memory, the files read from their spooled copies a piece at a time while the
upstream request is sent, so an upload of any size costs one piece of memory. Its length is
known beforehand (the files' sizes), so the upstream gets a ``Content-Length``, not chunks."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

from polyroute.model.media import Form, UploadedFile

PIECE = 256 * 1024
"""Bytes read from a spooled file at a time: the memory one upload costs while it is sent."""


@dataclass(frozen=True, slots=True)
class MultipartBody:
    content_type: str
    length: int
    parts: tuple[bytes | UploadedFile, ...]

    async def pieces(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            if isinstance(part, bytes):
                yield part
                continue
            with open(part.path, "rb") as file:  # noqa: ASYNC230 - reads go to a thread
                while piece := await asyncio.to_thread(file.read, PIECE):
                    yield piece


def form_body(form: Form, model: str, boundary: str | None = None) -> MultipartBody:
    """``form`` with ``model`` as its first field."""
    boundary = boundary or f"polyroute-{secrets.token_hex(12)}"
    dash = f"--{boundary}\r\n".encode()
    parts: list[bytes | UploadedFile] = []
    head = bytearray()
    for name, value in (("model", model), *form.fields):
        head += dash + _disposition(name) + b"\r\n\r\n" + value.encode() + b"\r\n"
    for file in form.files:
        head += dash + _disposition(name=file.name, filename=file.filename)
        head += f"\r\nContent-Type: {_header_safe(file.content_type)}\r\n\r\n".encode()
        parts += [bytes(head), file]
        head = bytearray(b"\r\n")
    head += f"--{boundary}--\r\n".encode()
    parts.append(bytes(head))
    length = sum(len(p) if isinstance(p, bytes) else p.size for p in parts)
    return MultipartBody(f"multipart/form-data; boundary={boundary}", length, tuple(parts))


def _disposition(name: str, filename: str | None = None) -> bytes:
    text = f'Content-Disposition: form-data; name="{_quoted(name)}"'
    if filename is not None:
        text += f'; filename="{_quoted(filename)}"'
    return text.encode()


def _quoted(value: str) -> str:
    """As browsers write names in a form-data header (WHATWG): a quote or a line break
    percent-encoded, so a client's file name cannot end the header or add one."""
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _header_safe(value: str) -> str:
    return value.replace("\r", "").replace("\n", "") or "application/octet-stream"
