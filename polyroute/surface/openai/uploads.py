"""Multipart uploads (audio to transcribe, images to edit): each file part spooled to a
temporary file as it arrives, a piece at a time, so an upload costs one piece of memory
whatever its size. Disk rather than a pipe straight to the upstream because the upstream is
chosen, and may be replaced by another deployment (failover), after the upload is read:
every attempt sends the spooled copy (``adapters/multipart.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import tempfile
import time
from collections.abc import Iterable

from aiohttp import BodyPartReader, web
from tinytag import TinyTag, TinyTagException

from polyroute.errors import InvalidRequest, PayloadTooLarge
from polyroute.model.media import Form, UploadedFile

log = logging.getLogger("polyroute.uploads")

PREFIX = "polyroute-upload-"
STALE_AFTER_S = 3600.0
"""A spooled upload untouched this long is a crashed process's: a live request writes its
file as the upload arrives and ends long before (its total deadline), and the workers of
``serve --workers N`` share ``TMPDIR``, so a younger file may be another worker's."""
PIECE = 256 * 1024
_MAX_FIELD_BYTES = 64 * 1024
"""A text field (prompt, language, response_format …): OpenAI's longest is a 32k prompt."""


async def read_form(http: web.Request, limit: int, idle_s: float) -> tuple[str | None, Form]:
    """The form's ``model`` and its other parts. ``limit`` bounds the whole body (413);
    ``idle_s`` how long the client may send nothing (408), so a large upload on a slow link
    is not cut while a stalled one is."""
    if not http.content_type.startswith("multipart/form-data"):
        raise InvalidRequest("This endpoint takes a multipart/form-data body (the file and "
                             "the other parameters as form fields).")
    length = http.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"The upload is {length} bytes; the limit is {limit}.")
    model: str | None = None
    fields: list[tuple[str, str]] = []
    files: list[UploadedFile] = []
    total = 0
    try:
        reader = await http.multipart()
        while True:
            async with asyncio.timeout(idle_s):
                part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader) or not part.name:
                raise InvalidRequest("Each form part must be a field with a name.")
            if part.filename is None:
                value = await _text(part, idle_s)
                total += len(value)
                if part.name == "model":
                    model = value
                else:
                    fields.append((part.name, value))
            else:
                file = await _spool(part, idle_s, limit - total)
                files.append(file)
                total += file.size
            if total > limit:
                raise PayloadTooLarge(f"The upload exceeds the limit of {limit} bytes.")
    except TimeoutError:
        discard(files)
        raise InvalidRequest(f"The upload stalled: nothing arrived for {idle_s:g} s.",
                             status=408, code="request_timeout") from None
    except ValueError as exc:  # aiohttp's reading of a malformed multipart body
        discard(files)
        raise InvalidRequest(f"The multipart body is malformed: {exc}") from None
    except BaseException:
        discard(files)
        raise
    return model, Form(tuple(fields), tuple(files))


async def _text(part: BodyPartReader, idle_s: float) -> str:
    value = bytearray()
    while True:
        async with asyncio.timeout(idle_s):
            piece = await part.read_chunk(PIECE)
        if not piece:
            break
        value += piece
        if len(value) > _MAX_FIELD_BYTES:
            raise InvalidRequest(f"The form field '{part.name}' is longer than "
                                 f"{_MAX_FIELD_BYTES} bytes.", param=part.name)
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise InvalidRequest(f"The form field '{part.name}' is not UTF-8 text.",
                             param=part.name) from None


async def _spool(part: BodyPartReader, idle_s: float, room: int) -> UploadedFile:
    fd, path = tempfile.mkstemp(prefix=PREFIX)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                async with asyncio.timeout(idle_s):
                    piece = await part.read_chunk(PIECE)
                if not piece:
                    break
                size += len(piece)
                if size > room:
                    raise PayloadTooLarge(f"The file '{part.filename}' makes the upload "
                                          "exceed its size limit.")
                await asyncio.to_thread(out.write, piece)
    except BaseException:
        _remove(path)
        raise
    content_type = part.headers.get("Content-Type", "application/octet-stream")
    assert part.name is not None and part.filename is not None
    return UploadedFile(part.name, part.filename, content_type, path, size)


def audio_seconds(file: UploadedFile) -> float | None:
    """An audio file's duration from its headers (MP3, Ogg Vorbis/Opus/FLAC, FLAC, M4A/MP4,
    WAV, AIFF, WMA: tinytag's formats, told by their first bytes); None when it is none of
    them or they do not say."""
    try:
        with open(file.path, "rb") as audio:
            seconds = TinyTag.get(file_obj=audio, duration=True, tags=False).duration
    except (TinyTagException, OSError, ValueError, IndexError, struct.error):
        return None  # a broken header is no duration, never a failed request
    return seconds if seconds is not None and seconds > 0 else None


def discard(files: Iterable[UploadedFile]) -> None:
    for file in files:
        _remove(file.path)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def sweep(directory: str | None = None, older_than_s: float = STALE_AFTER_S,
          now: float | None = None) -> int:
    """Remove the spooled uploads a crash left behind (``polyroute-upload-*`` in ``TMPDIR``,
    last written more than ``older_than_s`` ago); how many were removed. Run at start-up:
    a request removes its own files when it ends, but a killed process cannot."""
    folder = directory or tempfile.gettempdir()
    cutoff = (time.time() if now is None else now) - older_than_s
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        log.warning("cannot sweep stale uploads from %s: %s", folder, exc)
        return 0
    for entry in entries:
        if not entry.name.startswith(PREFIX):
            continue
        try:
            if not entry.is_file(follow_symlinks=False) \
                    or entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                continue
            os.unlink(entry.path)
            removed += 1
        except FileNotFoundError:
            continue  # another worker swept it first
        except OSError as exc:
            log.warning("cannot remove stale upload %s: %s", entry.path, exc)
    if removed:
        log.warning("removed %d stale upload file(s) from %s (left by a crash)", removed,
                    folder)
    return removed
