"""A durable local queue of ledger records: append-only segment files in one directory.

``append`` copies a whole line into the live segment, a file mapped into memory (MAP_SHARED):
once it returns, the line is in the kernel's page cache and survives ``kill -9`` of this
process (``msync`` in batches, off the event loop, extends that to a machine crash). A copy
into the map costs no system call and never releases the GIL — an ``os.write`` per request
did both, and waiting to take the GIL back from the flusher's threads cost tens of
microseconds a request. Segments are sparse files of ``CAPACITY`` bytes; the written part
ends at the first NUL byte (JSON lines never contain one). The reader
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
import mmap
import os
import time
from dataclasses import dataclass
from pathlib import Path

SEGMENT_BYTES = 4 * 1024 * 1024
"""Once a live segment holds this much and all of it is committed, a new one starts."""
CAPACITY = 64 * 1024 * 1024
"""The mapped size of a segment (sparse: only written pages take disk space)."""
_READ_BYTES = 1024 * 1024


@dataclass(slots=True)
class Segment:
    path: Path
    fd: int
    offset: int = 0
    """Bytes already committed to the database."""
    live: bool = False
    """Still being appended to by this process."""
    end: int = 0
    """Bytes written: the file beyond is unwritten (zeros)."""
    map: mmap.mmap | None = None


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
        for path in self._dir.glob(".ledger-*.seg.new"):  # died before naming it: empty
            _remove_unlocked(path)
        for path in sorted(self._dir.glob("ledger-*.seg")):
            fd = os.open(path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)  # a live process owns it
                continue
            self._segments.append(Segment(path, fd, end=_written_end(fd)))
        self._rotate()

    def _rotate(self) -> None:
        name = f"ledger-{time.time_ns():020d}-{os.getpid()}.seg"
        path = self._dir / name
        # Locked before it carries a name others adopt: a process starting at this moment
        # (a sibling worker) must not take a live segment for a dead one's.
        creating = self._dir / f".{name}.new"
        fd = os.open(creating, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, CAPACITY)
        os.rename(creating, path)
        if self._live is not None:
            self._live.live = False
        self._live = Segment(path, fd, live=True, map=mmap.mmap(fd, CAPACITY))
        self._segments.append(self._live)

    def append(self, line: bytes) -> None:
        """``line`` must end with a newline and hold no other, nor any NUL byte."""
        live = self._live
        assert live is not None and live.map is not None, "open() first"
        end = live.end
        if end + len(line) > CAPACITY:
            self._rotate()  # rare: a segment the flusher could not drain for a long while
            return self.append(line)
        live.map[end:end + len(line)] = line
        live.end = end + len(line)  # after the copy: a reader never sees half a line
        self._written += 1
        return None

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def adopted(self) -> int:
        return sum(1 for s in self._segments if not s.live)

    def backlog_bytes(self) -> int:
        return sum(s.end - s.offset for s in self._segments)

    def read(self) -> tuple[Segment, list[bytes], int] | None:
        """Whole lines not yet committed, from the oldest segment that has any: (segment,
        lines, bytes they span). Blocking file I/O: call it off the event loop."""
        for seg in self._segments:
            size = seg.end
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
        size = seg.end
        if seg.offset < size:
            return
        if seg.live:
            if size < self._segment_bytes:
                return
            self._rotate()
        self._segments.remove(seg)
        with contextlib.suppress(FileNotFoundError):
            seg.path.unlink()
        _close(seg)

    def sync(self) -> None:
        """msync the live segment if anything was appended since the last call (blocking)."""
        live = self._live
        if live is not None and live.map is not None and self._written != self._synced:
            self._synced = self._written
            live.map.flush()

    def close(self) -> None:
        """Close every segment, deleting those fully committed (the rest wait for the next
        process to adopt them)."""
        for seg in self._segments:
            with contextlib.suppress(OSError):
                if seg.end <= seg.offset:
                    seg.path.unlink()
                _close(seg)
        self._segments.clear()
        self._live = None


def _written_end(fd: int) -> int:
    """Where the written part of a segment left by another process ends: its first NUL."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0
    with mmap.mmap(fd, size, prot=mmap.PROT_READ) as view:
        end = view.find(b"\x00")
    return size if end < 0 else end


def _remove_unlocked(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError: its creator lives
            path.unlink()
        finally:
            os.close(fd)


def _close(seg: Segment) -> None:
    if seg.map is not None:
        seg.map.close()
        seg.map = None
    os.close(seg.fd)
