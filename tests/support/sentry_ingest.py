# SPDX-License-Identifier: Apache-2.0
"""A fake Sentry ingest on loopback: what the SDK sends, kept byte for byte.

It answers ``POST /api/<project>/envelope/`` and ``POST /api/<project>/store/`` like
Sentry (200 and the event id), decodes the body (gzip, deflate or brotli, as the SDK chose)
and keeps both the bytes on the wire and the decoded ones, so tests can assert on the
events and search everything that left the process for a secret. Any other request is
a 404 and is kept too: a test should see a client talking to the wrong place.
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import json
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

_ENDPOINT = re.compile(r"^/api/(?P<project>\d+)/(?P<kind>envelope|store)/?$")


@dataclass(frozen=True)
class Received:
    """One request: path, headers (lower-case names), the raw and the decoded body."""

    path: str
    headers: dict[str, str]
    raw: bytes
    body: bytes
    items: list[tuple[dict[str, Any], bytes]] = field(default_factory=list)

    @property
    def project(self) -> str | None:
        found = _ENDPOINT.match(self.path.split("?", 1)[0])
        return found["project"] if found else None


def decode_body(raw: bytes, encoding: str | None) -> bytes:
    """The body without its ``Content-Encoding``; an unknown coding raises ``ValueError``."""
    coding = (encoding or "identity").strip().lower()
    if coding == "gzip":
        return gzip.decompress(raw)
    if coding == "deflate":
        return zlib.decompress(raw)
    if coding == "br":
        # The SDK compresses with brotli whenever the package is importable (here, a
        # dependency of the load-test tool brings it), so a real ingest must read it.
        import brotli

        return bytes(brotli.decompress(raw))
    if coding in ("identity", ""):
        return raw
    raise ValueError(f"unsupported content-encoding {coding!r}")


def parse_envelope(body: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """An envelope's header and its items as (item header, payload bytes).

    Format: a JSON header line, then per item a JSON header line and its payload —
    ``length`` bytes when the header gives a length, else up to the next newline.
    """
    first, _, rest = body.partition(b"\n")
    header = json.loads(first)
    items: list[tuple[dict[str, Any], bytes]] = []
    pos = 0
    while pos < len(rest) and len(items) < 1000:  # bounded: a real envelope holds a few
        end = rest.find(b"\n", pos)
        line = rest[pos:] if end < 0 else rest[pos:end]
        pos = len(rest) if end < 0 else end + 1
        if not line.strip():
            continue
        item_header = json.loads(line)
        length = item_header.get("length")
        if length is not None:
            payload = rest[pos : pos + int(length)]
            pos += int(length) + 1  # the payload's trailing newline
        else:
            end = rest.find(b"\n", pos)
            payload = rest[pos:] if end < 0 else rest[pos:end]
            pos = len(rest) if end < 0 else end + 1
        items.append((item_header, payload))
    return header, items


class SentryIngest:
    """Start with ``running()``; ``dsn`` points an SDK at it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "not running"
        return int(self._server.server_address[1])

    def dsn(self, project: int = 1, key: str = "publickey") -> str:
        return f"http://{key}@127.0.0.1:{self.port}/{project}"

    @contextlib.contextmanager
    def running(self) -> Iterator[SentryIngest]:
        ingest = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                found = _ENDPOINT.match(self.path.split("?", 1)[0])
                try:
                    body = decode_body(raw, headers.get("content-encoding"))
                except (ValueError, OSError, zlib.error):
                    found, body = None, b""  # kept, answered 404, and holds no events
                items: list[tuple[dict[str, Any], bytes]] = []
                event_id = ""
                if found and found["kind"] == "envelope":
                    envelope_header, items = parse_envelope(body)
                    event_id = str(envelope_header.get("event_id", ""))
                elif found:  # the old store endpoint: the body is the event itself
                    items = [({"type": "event"}, body)]
                    event_id = str(json.loads(body).get("event_id", ""))
                ingest._keep(Received(self.path, headers, raw, body, items))
                reply = json.dumps({"id": event_id}).encode() if found else b"{}"
                self.send_response(200 if found else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: the test output is for failures

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        thread = threading.Thread(target=server.serve_forever, name="sentry-ingest", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    def _keep(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def wire_bytes(self) -> bytes:
        """Everything that arrived, decoded, headers included: what a secret must not be in."""
        return b"\n".join(
            json.dumps(r.headers).encode() + b"\n" + r.path.encode() + b"\n" + r.body
            for r in self.received
        )

    def events(self) -> list[dict[str, Any]]:
        """Every error event received, in arrival order."""
        out: list[dict[str, Any]] = []
        for r in self.received:
            for header, payload in r.items:
                if header.get("type") == "event":
                    out.append(json.loads(payload))
        return out

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """The events once ``predicate(events)`` holds; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if predicate(events):
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching events within {timeout}s: {events}")
            time.sleep(0.02)


def tag(event: dict[str, Any], name: str) -> Any:
    """A tag of an event; the SDK sends tags as a mapping (older servers took pairs)."""
    tags = event.get("tags") or {}
    if isinstance(tags, list):
        tags = dict(tags)
    return tags.get(name)
