"""A real OTLP/HTTP traces receiver on loopback: it decodes what the gateway exports with
``opentelemetry-proto``'s own protobuf classes, as a collector would."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    return None if kind is None else getattr(v, kind)


class ReceivedSpan:
    def __init__(self, span: Span, resource: dict[str, Any]) -> None:
        self.name = span.name
        self.trace_id = span.trace_id.hex()
        self.span_id = span.span_id.hex()
        self.parent_id = span.parent_span_id.hex()
        self.kind = span.kind
        self.start_ns, self.end_ns = span.start_time_unix_nano, span.end_time_unix_nano
        self.error = span.status.code == span.status.STATUS_CODE_ERROR
        self.attributes = {a.key: value(a.value) for a in span.attributes}
        self.resource = resource


class OtlpReceiver:
    """``delay_s``: how long it takes to answer each export (a slow collector)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.spans: list[ReceivedSpan] = []
        self.content_types: list[str] = []
        """One per export request received."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.content_types.append(self.headers.get("Content-Type", ""))
                request = ExportTraceServiceRequest.FromString(body)
                for rs in request.resource_spans:
                    resource = {a.key: value(a.value) for a in rs.resource.attributes}
                    for ss in rs.scope_spans:
                        receiver.spans.extend(ReceivedSpan(s, resource) for s in ss.spans)
                time.sleep(delay_s)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"

    def trace(self, attribute: str, wanted: Any, count: int,
              timeout: float = 10) -> list[ReceivedSpan]:
        """Every span of the trace whose root has ``attribute`` = ``wanted``, once ``count``
        of them have arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            roots = [s for s in self.spans if s.attributes.get(attribute) == wanted]
            if roots:
                found = [s for s in self.spans if s.trace_id == roots[0].trace_id]
                if len(found) >= count:
                    return found
            time.sleep(0.05)
        raise AssertionError(f"no trace of {count} spans with {attribute}={wanted!r}; "
                             f"received {[(s.name, s.attributes) for s in self.spans]}")

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
