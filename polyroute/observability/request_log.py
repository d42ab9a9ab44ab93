"""One structured JSON line per request, exported to sinks off the request path.

On the request path :meth:`RequestLog.observe` only appends the finished record to each sink's
bounded deque (a full one drops the record and counts it): no encoding, no I/O. Each sink's
task wakes every ``flush_interval_s``, encodes what is queued, redacts it and writes it:

- :class:`LoggerSink`: the logger ``polyroute.requests`` (stderr, with the rest of the log);
- :class:`FileSink`: a JSONL file, rotated by size (``path`` → ``path.1`` → … ``path.N``);
- :class:`WebhookSink`: POSTed as a JSON array, retried with exponential backoff; a batch
  still refused goes back to the front of its queue for the next flush (within the queue's
  bound: what no longer fits is dropped and counted).

A line holds ids, who (the key's public id, team, organisation), what (model, group,
deployment, the attempt chain), how it ended (status, error class, latency, time to first
token), tokens by kind and cost. Never a prompt, an answer or a credential: the configured
secrets and any virtual key are redacted from the encoded batch, whatever field they hide in.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import aiohttp
import msgspec

from polyroute.model.record import RequestRecord
from polyroute.redaction import Redactor, mask_virtual_keys

log = logging.getLogger("polyroute.requests")
_problems = logging.getLogger("polyroute.logs")


class LogLine(msgspec.Struct, omit_defaults=True):
    """The request line's fields, in this order."""

    time: str
    request_id: str
    endpoint: str
    model: str
    status: int
    latency_ms: float
    stream: bool = False
    client_request_id: str | None = None
    model_group: str | None = None
    vendor: str | None = None
    deployment: str | None = None
    upstream_model: str | None = None
    error_class: str | None = None
    ttft_ms: float | None = None
    attempts: list[dict[str, Any]] = msgspec.field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    key_id: str | None = None
    team: str | None = None
    org: str | None = None
    route: str | None = None


def line(record: RequestRecord) -> LogLine:
    usage = record.usage
    return LogLine(
        time=datetime.fromtimestamp(record.started_at, UTC).isoformat(timespec="milliseconds"),
        request_id=record.request_id, endpoint=record.endpoint, model=record.requested_model,
        status=record.status, latency_ms=round(record.latency_s * 1000, 3),
        stream=record.stream, client_request_id=record.client_request_id,
        model_group=record.model_group, vendor=record.vendor, deployment=record.deployment,
        upstream_model=record.upstream_model, error_class=record.error_class,
        ttft_ms=None if record.ttft_s is None else round(record.ttft_s * 1000, 3),
        attempts=[{"deployment": a.deployment, "vendor": a.vendor,
                   "latency_ms": round(a.latency_s * 1000, 3),
                   "outcome": a.error_class or "ok", "status": a.status}
                  for a in record.attempts],
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        cached_tokens=usage.cached_tokens or None if usage else None,
        reasoning_tokens=usage.reasoning_tokens or None if usage else None,
        cost_usd=record.cost_usd, key_id=record.key_id, team=record.team, org=record.org,
        route=record.route)


Outcome = Literal["ok", "retry", "lost"]
"""A batch's fate: written; not written but worth another flush (requeued); refused for
good (counted as failed)."""


class Writer(Protocol):
    name: str

    async def write(self, lines: Sequence[bytes]) -> Outcome: ...

    async def aclose(self) -> None: ...


class Sink:
    """A bounded queue of records in front of a writer, and its counters."""

    def __init__(self, writer: Writer, queue_size: int, batch: int = 1000) -> None:
        self.writer = writer
        self.queue: deque[RequestRecord] = deque()
        self._max = queue_size
        self._batch = batch
        self.dropped = 0
        self.written = 0
        self.failed = 0
        self.requeued = 0

    def offer(self, record: RequestRecord) -> None:
        if len(self.queue) >= self._max:
            self.dropped += 1
        else:
            self.queue.append(record)

    def requeue(self, batch: Sequence[RequestRecord]) -> None:
        """Put a batch that failed back at the front (it is older than what is queued), as
        far as the bound allows: the oldest of it that do not fit are dropped and counted
        (the newest lines are the ones a log pipeline wants first after an outage)."""
        room = max(0, self._max - len(self.queue))
        keep = batch[len(batch) - room:] if room < len(batch) else batch
        self.dropped += len(batch) - len(keep)
        self.requeued += len(keep)
        self.queue.extendleft(reversed(keep))

    def take(self) -> list[RequestRecord]:
        queue = self.queue
        batch: list[RequestRecord] = []
        while queue and len(batch) < self._batch:
            batch.append(queue.popleft())
        return batch


class LoggerSink:
    name = "log"

    async def write(self, lines: Sequence[bytes]) -> Outcome:
        for text in lines:
            log.info("%s", text.decode())
        return "ok"

    async def aclose(self) -> None:
        pass


class FileSink:
    """Appends lines to ``path``; when it would pass ``max_bytes``, ``path`` becomes
    ``path.1`` (``path.1`` → ``path.2`` …, the oldest beyond ``backups`` deleted). Written
    in a worker thread, one ``write`` per batch, so a line is never split across files."""

    name = "file"

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        self.path, self._max, self._backups = path, max_bytes, backups

    async def write(self, lines: Sequence[bytes]) -> Outcome:
        data = b"".join(x + b"\n" for x in lines)
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._append, data)
        except OSError as exc:
            _problems.error("request log file %s: %s", self.path, exc)
            return "lost"  # the append may have been partial: a retry could duplicate lines
        return "ok"

    def _append(self, data: bytes) -> None:
        try:
            size = os.path.getsize(self.path)
        except FileNotFoundError:
            size = 0
        if size and size + len(data) > self._max:
            self._rotate()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def _rotate(self) -> None:
        if self._backups == 0:
            os.remove(self.path)
            return
        for n in range(self._backups - 1, 0, -1):
            older = f"{self.path}.{n}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{n + 1}")
        os.replace(self.path, f"{self.path}.1")

    async def aclose(self) -> None:
        pass


class WebhookSink:
    """POSTs each batch as a JSON array; a connection error, timeout, 429 or 5xx is retried
    ``retries`` times after 0.5 s, 1 s, 2 s … (at most 30 s), then the batch is requeued for
    the next flush (a receiver down for minutes loses nothing the queue can hold)."""

    name = "webhook"

    def __init__(self, url: str, headers: Mapping[str, str], retries: int, timeout_s: float,
                 backoff_s: float = 0.5) -> None:
        self.url, self._headers = url, {**headers, "Content-Type": "application/json"}
        self._retries, self._backoff_s = retries, backoff_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def write(self, lines: Sequence[bytes]) -> Outcome:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = b"[" + b",".join(lines) + b"]"
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(min(30.0, self._backoff_s * 2 ** (attempt - 1)))
            try:
                async with self._session.post(self.url, data=body,
                                              headers=self._headers) as response:
                    if response.status < 300:
                        return "ok"
                    if response.status != 429 and response.status < 500:
                        _problems.error("request log webhook: %s refused a batch: HTTP %d",
                                        self.url, response.status)
                        return "lost"  # a 4xx other than 429 will not change on retry
            except (aiohttp.ClientError, TimeoutError) as exc:
                _problems.warning("request log webhook: %s: %s", self.url, exc)
        _problems.warning("request log webhook: %d lines requeued after %d attempts",
                          len(lines), self._retries + 1)
        return "retry"

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class RequestLog:
    """The request observer feeding every sink. Counters: per sink, read by /metrics."""

    def __init__(self, writers: Iterable[Writer], *, secrets: Iterable[str] = (),
                 queue_size: int = 10_000, flush_interval_s: float = 1.0,
                 batch: int = 1000) -> None:
        self.sinks = [Sink(w, queue_size, batch) for w in writers]
        self._interval_s = flush_interval_s
        self._redactor = Redactor(secrets)
        self._encoder = msgspec.json.Encoder()
        self._tasks: list[asyncio.Task[None]] = []

    def observe(self, record: RequestRecord) -> None:
        for sink in self.sinks:
            sink.offer(record)

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self.sinks)

    @property
    def written(self) -> int:
        return sum(s.written for s in self.sinks)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.sinks)

    @property
    def requeued(self) -> int:
        return sum(s.requeued for s in self.sinks)

    def encode(self, records: Sequence[RequestRecord]) -> list[bytes]:
        out = []
        for record in records:
            text = self._encoder.encode(line(record)).decode()
            clean = mask_virtual_keys(self._redactor.redact(text))
            out.append(clean.encode())
        return out

    async def _flush(self, sink: Sink) -> bool:
        """Write what is queued; False when a batch was requeued (the writer's peer is
        down: the rest waits for the next flush rather than failing now, in a loop)."""
        while batch := sink.take():
            outcome = await sink.writer.write(self.encode(batch))
            if outcome == "ok":
                sink.written += len(batch)
            elif outcome == "lost":
                sink.failed += len(batch)
            else:
                sink.requeue(batch)
                return False
        return True

    async def _run(self, sink: Sink) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self._flush(sink)
            except Exception:  # a sink's bug must not end its task: the next batch may pass
                _problems.exception("request log sink %s", sink.writer.name)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(s)) for s in self.sinks]

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sink in self.sinks:
            if not await self._flush(sink):  # the last chance: what is left is lost
                sink.failed += len(sink.queue)
                sink.queue.clear()
            await sink.writer.aclose()
