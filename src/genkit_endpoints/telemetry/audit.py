"""The audit log: one JSON line per REST request and gRPC call, on a sink of its own.

Security teams ingest it into a SIEM, so it is separate from the application log (its
own sink: ``AUDIT_LOG=stdout|stderr|<file>|off``), one self-contained JSON object per
line, and it carries who did what with which outcome — never a body, a prompt, a key or
a header. Its fields come from the request record that the layers fill as the request
runs (flow, cache result, rate-limit decision, model and tokens).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from genkit_endpoints.core.context import RequestRecord, current_request_id
from genkit_endpoints.telemetry.tracing import current_trace_id

__all__ = ["AuditLog", "open_audit_log"]


class AuditLog:
    """Writes audit entries to ``stream`` (binary), one flushed line each."""

    def __init__(self, stream: IO[bytes], *, owned: bool = False) -> None:
        self._stream = stream
        self._owned = owned

    def http(
        self,
        record: RequestRecord,
        *,
        method: str,
        route: str,
        status: int,
        seconds: float,
        client_ip: str | None,
        bytes_in: int,
        bytes_out: int,
    ) -> None:
        self._write(
            record,
            {
                "transport": "http",
                "method": method,
                "route": route,
                "status": status,
                "client_ip": client_ip,
                "bytes_in": bytes_in,
                "bytes_out": bytes_out,
            },
            seconds,
        )

    def rpc(
        self,
        record: RequestRecord,
        *,
        method: str,
        code: str,
        seconds: float,
        client_ip: str | None,
        bytes_in: int | None = None,
        bytes_out: int | None = None,
    ) -> None:
        self._write(
            record,
            {
                "transport": "grpc",
                "method": "POST",
                "route": method,
                "status": code,
                "client_ip": client_ip,
                "bytes_in": bytes_in,
                "bytes_out": bytes_out,
            },
            seconds,
        )

    def _write(self, record: RequestRecord, fields: dict[str, Any], seconds: float) -> None:
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "event": "audit",
            "request_id": current_request_id(),
            "trace_id": current_trace_id(),
            "principal": record.principal,
            **fields,
            "flow": record.flow,
            "duration_ms": round(seconds * 1000, 3),
            "cache": record.cache,
            "rate_limit": record.rate_limit,
            "model": record.model,
            "input_tokens": record.input_tokens,
            "output_tokens": record.output_tokens,
        }
        self._stream.write(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))
        self._stream.flush()

    def close(self) -> None:
        if self._owned:
            self._stream.close()


def open_audit_log(sink: str) -> AuditLog | None:
    """The audit log for ``AUDIT_LOG``'s value: stdout, stderr, off (None) or a file path
    (appended to, created if missing)."""
    if sink == "off":
        return None
    if sink == "stdout":
        return AuditLog(sys.stdout.buffer)
    if sink == "stderr":
        return AuditLog(sys.stderr.buffer)
    return AuditLog(open(sink, "ab"), owned=True)  # closed by close()
