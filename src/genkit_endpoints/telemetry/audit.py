# SPDX-License-Identifier: Apache-2.0
"""The audit log: one JSON line per REST request and gRPC call, on a sink of its own.

Security teams ingest it into a SIEM, so it is separate from the application log (its
own sink: ``AUDIT_LOG=stdout|stderr|<file>|off``), one self-contained JSON object per
line, and it carries who did what with which outcome — never a body, a prompt, a key or
a header. Its fields come from the request record that the layers fill as the request
runs (flow, cache result, rate-limit decision, model and tokens).

Every line has the same fields, each with one type, so an index that maps a field on
its first line accepts all the others: ``status`` is a number on both transports (the
HTTP status; on gRPC the status code's number, 0 for OK), and gRPC lines add the code's
name as ``grpc_code``. Each line is one ``write`` to a file opened for appending, so
worker processes sharing a file never interleave within a line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import IO, Any

import orjson
import structlog

from genkit_endpoints.core.context import RequestRecord, current_request_id
from genkit_endpoints.core.grpc_wire import GRPC_STATUS_NUMBERS
from genkit_endpoints.core.timestamps import UtcStamp
from genkit_endpoints.telemetry.tracing import current_trace_id

__all__ = ["AuditLog", "AuditSinkError", "open_audit_log"]

_log = structlog.get_logger(__name__)


class AuditSinkError(ValueError):
    """``AUDIT_LOG`` names a file that cannot be opened for appending. A ``ValueError``,
    so the command line reports it as one line like a bad setting."""


class AuditLog:
    """Writes audit entries to ``stream`` (binary), one flushed line each.

    ``clock`` gives each entry's time (tests pass a fixed one; default: the system clock,
    in UTC). A failed write (a full disk) is logged and the request goes on: its response
    is sent already.
    """

    def __init__(
        self,
        stream: IO[bytes],
        *,
        owned: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._stream = stream
        self._owned = owned
        self._stamp: Callable[[], str] = (
            UtcStamp() if clock is None else lambda: clock().isoformat(timespec="milliseconds")
        )

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
        """``method`` is the full gRPC method (``/package.Service/Method``), ``code`` the
        status code's name."""
        self._write(
            record,
            {
                "transport": "grpc",
                "method": "POST",
                "route": method,
                "status": GRPC_STATUS_NUMBERS.get(code, GRPC_STATUS_NUMBERS["UNKNOWN"]),
                "grpc_code": code,
                "client_ip": client_ip,
                "bytes_in": bytes_in,
                "bytes_out": bytes_out,
            },
            seconds,
        )

    def _write(self, record: RequestRecord, fields: dict[str, Any], seconds: float) -> None:
        entry = {
            "time": self._stamp(),
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
        try:
            self._stream.write(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))
            self._stream.flush()
        except (OSError, ValueError) as exc:  # ValueError: the stream was closed
            _log.error("audit_write_failed", error=str(exc))

    def close(self) -> None:
        if self._owned:
            self._stream.close()


def open_audit_log(sink: str) -> AuditLog | None:
    """The audit log for ``AUDIT_LOG``'s value: stdout, stderr, off (None) or a file path
    (appended to, created if missing). Raises ``AuditSinkError`` for a file it cannot open."""
    if sink == "off":
        return None
    if sink == "stdout":
        return AuditLog(sys.stdout.buffer)
    if sink == "stderr":
        return AuditLog(sys.stderr.buffer)
    try:
        # Unbuffered: each line is one write(2) on an O_APPEND descriptor, which lands
        # whole at the end of the file even with several processes appending.
        stream = open(sink, "ab", buffering=0)  # noqa: SIM115 - closed by close()
    except OSError as exc:
        raise AuditSinkError(
            f"invalid setting AUDIT_LOG: cannot append to {sink}: {exc.strerror or exc}"
        ) from None
    return AuditLog(stream, owned=True)
