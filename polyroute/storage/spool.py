"""A durable local queue of ledger records: append-only segment files in one directory.

``append`` is one ``os.write`` of a whole line to a file opened with O_APPEND: once it
returns, the line is in the kernel's page cache and survives ``kill -9`` of this process
(``fsync`` in batches, off the event loop, extends that to a machine crash). The reader
follows each segment by byte offset; a segment is deleted only after every line in it was
committed to the database, and the database ignores lines it already has, so a crash between
the two duplicates nothing.

Each process writes its own segments and holds an exclusive ``flock`` on every segment it
owns, so replicas may share a directory: a segment nobody holds belongs to a process that
died, and the next one to start adopts it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

SEGMENT_BYTES = 4 * 1024 * 1024
_READ_BYTES = 1024 * 1024


@dataclass(slots=True)
class Segment:
    path: Path
    fd: int
    offset: int = 0
    """Bytes already committed to the database."""
    live: bool = False
    """Still being appended to by this process."""


class Spool:
    def __init__(self, directory: str, segment_bytes: int = SEGMENT_BYTES) -> None:
        self._dir = Path(directory)
        self._segment_bytes = segment_bytes
        self._segments: list[Segment] = []
        self._live: Segment | None = None
        self._written = 0
        self._synced = 0

    def open(self) -> None:
        """Adopt the segments of dead processes (oldest first), then start a live one."""
        self._dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(self._dir.glob("ledger-*.seg")):
            fd = os.open(path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)  # a live process owns it
                continue
            self._segments.append(Segment(path, fd))
        self._rotate()

    def _rotate(self) -> None:
        name = f"ledger-{time.time_ns():020d}-{os.getpid()}.seg"
        path = self._dir / name
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if self._live is not None:
            self._live.live = False
        self._live = Segment(path, fd, live=True)
        self._segments.append(self._live)

    def append(self, line: bytes) -> None:
        """``line`` must end with a newline and hold no other."""
        assert self._live is not None, "open() first"
        os.write(self._live.fd, line)
        self._written += 1

    @property
    def adopted(self) -> int:
        return sum(1 for s in self._segments if not s.live)

    def backlog_bytes(self) -> int:
        return sum(os.fstat(s.fd).st_size - s.offset for s in self._segments)

    def read(self) -> tuple[Segment, list[bytes], int] | None:
        """Whole lines not yet committed, from the oldest segment that has any: (segment,
        lines, bytes they span). Blocking file I/O: call it off the event loop."""
        for seg in self._segments:
            size = os.fstat(seg.fd).st_size
            if size <= seg.offset:
                if not seg.live:
                    return seg, [], 0  # adopted and already committed: drop it
                continue
            data = os.pread(seg.fd, min(_READ_BYTES, size - seg.offset), seg.offset)
            end = data.rfind(b"\n") + 1
            if end:
                return seg, data[:end].splitlines(), end
            if not seg.live and len(data) == size - seg.offset:
                return seg, [], len(data)  # the torn last line of a writer that died: skip
        return None

    def committed(self, seg: Segment, nbytes: int) -> None:
        """``nbytes`` more of ``seg`` are in the database: drop segments that are done, and
        start a new live segment once the current one is big and fully committed."""
        seg.offset += nbytes
        size = os.fstat(seg.fd).st_size
        if seg.offset < size:
            return
        if seg.live:
            if size < self._segment_bytes:
                return
            self._rotate()
        self._segments.remove(seg)
        with contextlib.suppress(FileNotFoundError):
            seg.path.unlink()
        os.close(seg.fd)

    def sync(self) -> None:
        """fsync the live segment if anything was appended since the last call (blocking)."""
        live = self._live
        if live is not None and self._written != self._synced:
            self._synced = self._written
            os.fsync(live.fd)

    def close(self) -> None:
        """Close every segment, deleting those fully committed (the rest wait for the next
        process to adopt them)."""
        for seg in self._segments:
            with contextlib.suppress(OSError):
                if os.fstat(seg.fd).st_size <= seg.offset:
                    seg.path.unlink()
                os.close(seg.fd)
        self._segments.clear()
        self._live = None
