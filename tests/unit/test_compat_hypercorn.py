# SPDX-License-Identifier: Apache-2.0
"""Canaries for the hypercorn internals in ``genkit_endpoints.compat.hypercorn``.

hypercorn has no setting for its HTTP/1 protocol class, so the kit replaces the name its
connection wrapper instantiates and overrides private methods of the class. These tests
fail when a hypercorn release stops honouring that: a method renamed or re-shaped, the
wrapper no longer looking the class up where it is replaced, the 100-continue hold no
longer reached. Run them before widening the hypercorn range.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import hypercorn.protocol
import pytest
from hypercorn.asyncio import serve
from hypercorn.protocol.h11 import H11Protocol

from genkit_endpoints import compat
from genkit_endpoints.compat import UnsupportedDependency
from genkit_endpoints.compat.hypercorn import (
    HardenedH11Protocol,
    install_hardened_protocol,
    require_hypercorn,
)
from genkit_endpoints.serving.config import ServerConfig
from genkit_endpoints.serving.runners.hypercorn import hypercorn_config, run_hypercorn
from tests.support.raw_socket import exchange

# name -> parameters (after self) of every H11Protocol method the subclass overrides.
OVERRIDDEN = {
    "initiate": [],
    "handle": ["event"],
    "_create_stream": ["request"],
    "_check_protocol": ["event"],
    "_send_error_response": ["status_code"],
    "_send_h11_event": ["event"],
}


@pytest.mark.parametrize("name", sorted(OVERRIDDEN))
def test_every_overridden_protocol_method_exists_with_its_parameters(name: str) -> None:
    stock = H11Protocol.__dict__.get(name)
    assert inspect.iscoroutinefunction(stock), f"H11Protocol.{name} is gone or not async"
    assert list(inspect.signature(stock).parameters)[1:] == OVERRIDDEN[name]


def test_the_hardened_class_replaces_the_name_the_connection_wrapper_uses() -> None:
    install_hardened_protocol()
    install_hardened_protocol()  # idempotent
    assert hypercorn.protocol.H11Protocol is HardenedH11Protocol
    # That the connection wrapper really builds its protocol from this name is what the
    # real-server tests below show.


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/read":
        while (await receive()).get("more_body"):
            pass
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


@contextmanager
def _hypercorn_server() -> Iterator[int]:
    """A real hypercorn on 127.0.0.1 with the runner's settings, in a thread."""
    install_hardened_protocol()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = hypercorn_config(ServerConfig(host="127.0.0.1", max_header_count=100))
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns (and closes) it from here
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(serve(_app, config, shutdown_trigger=stop.wait),),  # type: ignore[arg-type]
        daemon=True,
    )
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # ready once it answers
            try:
                if exchange(port, HEAD + b"\r\n").startswith(b"HTTP/1.1 200"):
                    break
            except OSError:
                pass
            time.sleep(0.05)
        yield port
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=20)
        loop.close()


HEAD = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"


def test_a_real_hypercorn_refuses_too_many_header_fields_with_431() -> None:
    """Stock hypercorn serves 102 header fields; the hardened protocol refuses them."""
    fields = b"".join(b"x-f%d: v\r\n" % i for i in range(100))
    with _hypercorn_server() as port:
        refused = exchange(port, HEAD + fields + b"\r\n")
    assert refused.startswith(b"HTTP/1.1 431 ")


def test_a_real_hypercorn_sends_100_continue_only_when_the_app_reads_the_body() -> None:
    expect = b"Host: t\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
    with _hypercorn_server() as port:
        reads = exchange(port, b"POST /read HTTP/1.1\r\n" + expect, then=b"body")
        skips = exchange(port, b"POST /skip HTTP/1.1\r\n" + expect, then=b"body")
    assert reads.startswith(b"HTTP/1.1 100 ")
    assert skips.startswith(b"HTTP/1.1 200 ")
    assert b" 100 " not in skips


@pytest.mark.parametrize("version", ["0.17.3", "0.19.0", "0.19.0b1"])
def test_an_out_of_range_hypercorn_is_one_clear_line_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    """The runner checks first, in the process that would supervise the workers."""
    monkeypatch.setattr(compat, "installed_version", lambda dist: version)
    with pytest.raises(UnsupportedDependency) as err:
        run_hypercorn(_app, ServerConfig(host="127.0.0.1", port=1, workers=2))  # type: ignore[arg-type]
    message = str(err.value)
    assert message.startswith(f"hypercorn {version} is not supported (needs >=0.18,<0.19): ")
    assert "\n" not in message


def test_the_locked_hypercorn_is_in_range() -> None:
    assert require_hypercorn().startswith("0.18.")
