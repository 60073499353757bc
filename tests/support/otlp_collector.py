# SPDX-License-Identifier: Apache-2.0
"""A fake OpenTelemetry collector on loopback: OTLP over http/protobuf and over gRPC.

The service under test exports to it with the real OTLP exporters, so what the tests see
is what a real collector would receive: ``POST /v1/traces`` with a protobuf
``ExportTraceServiceRequest`` body (gzip'd or not), or the ``TraceService/Export`` RPC on
a ``grpc.aio`` server. Each export is kept twice: as the raw message bytes (tests grep
them for secrets that must never leave the service) and as flattened ``ExportedSpan``
records (tests rebuild trace trees from them). Both servers run on one event loop in a
background thread; the HTTP side is a minimal HTTP/1.1 server of its own, enough for the
exporter's keep-alive POSTs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

SERVER, CLIENT, INTERNAL = 2, 3, 1  # the OTLP span kinds tests look at
_MAX_BODY = 16 * 1024 * 1024


@dataclass(frozen=True)
class ExportedSpan:
    trace_id: str  # lowercase hex, as in traceparent
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    attributes: dict[str, Any]
    service_name: str | None
    status_message: str = ""
    events: tuple[tuple[str, dict[str, Any]], ...] = ()


@dataclass
class _Record:
    raw: list[bytes] = field(default_factory=list)
    spans: list[ExportedSpan] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)  # per export, lower-case


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


def _flatten(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ExportedSpan]:
    out = []
    for resource_spans in request.resource_spans:
        service = _attributes(resource_spans.resource.attributes).get("service.name")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                out.append(
                    ExportedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        kind=span.kind,
                        attributes=_attributes(span.attributes),
                        service_name=service,
                        status_message=span.status.message,
                        events=tuple((e.name, _attributes(e.attributes)) for e in span.events),
                    )
                )
    return out


class FakeCollector:
    """Start with ``with FakeCollector() as collector:``; export to ``http_endpoint``
    (``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf``) or ``grpc_endpoint`` (``grpc``)."""

    def __init__(self, start_timeout: float = 5.0) -> None:
        self._lock = threading.Lock()
        self._record = _Record()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._start_timeout = start_timeout
        self.http_port = 0
        self.grpc_port = 0

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    # -- what was received ----------------------------------------------------------------

    def spans(self) -> list[ExportedSpan]:
        with self._lock:
            return list(self._record.spans)

    def raw(self) -> bytes:
        """Every export message received, concatenated: what left the service."""
        with self._lock:
            return b"".join(self._record.raw)

    def export_headers(self) -> list[dict[str, str]]:
        """The headers (HTTP) or metadata (gRPC) each export arrived with."""
        with self._lock:
            return list(self._record.headers)

    def wait_for(
        self, ready: Callable[[list[ExportedSpan]], bool], timeout: float = 10.0
    ) -> list[ExportedSpan]:
        """The spans received, once ``ready(spans)`` holds; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if ready(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted({(s.trace_id[:8], s.name) for s in spans})
                raise AssertionError(f"spans not received within {timeout}s; got {names}")
            time.sleep(0.05)

    def add(self, raw: bytes, headers: dict[str, str]) -> None:
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(raw)
        with self._lock:
            self._record.raw.append(raw)
            self._record.spans.extend(_flatten(request))
            self._record.headers.append(headers)

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="fake-collector", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._start_timeout) or self._error is not None:
            raise RuntimeError("fake collector did not start") from self._error
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(self._start_timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        http = await asyncio.start_server(self._http_connection, "127.0.0.1", 0)
        self.http_port = http.sockets[0].getsockname()[1]
        server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), server)
        self.grpc_port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            http.close()
            await server.stop(None)

    async def _http_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:  # keep-alive: one request after another until the client closes
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                except (asyncio.IncompleteReadError, TimeoutError):
                    return
                line, *lines = head.decode("latin-1").split("\r\n")
                method, path, _ = line.split(" ", 2)
                headers = {}
                for header in lines:
                    if header:
                        name, _, value = header.partition(":")
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(min(length, _MAX_BODY))
                if headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if method == "POST" and path == "/v1/traces":
                    self.add(body, headers)
                    reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                    status = "200 OK"
                else:
                    reply, status = b"", "404 Not Found"
                writer.write(
                    f"HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\n"
                    f"content-length: {len(reply)}\r\n\r\n".encode()
                    + reply
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self, collector: FakeCollector) -> None:
        self.collector = collector

    async def Export(  # noqa: N802 - the generated servicer's method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        metadata = {k.lower(): str(v) for k, v in context.invocation_metadata() or ()}
        self.collector.add(request.SerializeToString(), metadata)
        return trace_service_pb2.ExportTraceServiceResponse()
