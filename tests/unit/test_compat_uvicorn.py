# SPDX-License-Identifier: Apache-2.0
"""Canaries for the uvicorn internals in ``genkit_endpoints.compat.uvicorn``.

Each test fails when a uvicorn release stops honouring one hook: the protocol callbacks
the hardened protocol overrides, the protocol class a real server uses for a request,
the signal list a drain empties, the supervisor method that closes its socket. Run them
before widening the uvicorn range in ``compat.SUPPORTED`` and pyproject.toml.
"""

from __future__ import annotations

import inspect
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from genkit_endpoints import compat
from genkit_endpoints.compat import UnsupportedDependency
from genkit_endpoints.compat.uvicorn import (
    DrainingServer,
    HardenedHttpToolsProtocol,
    require_uvicorn,
)
from genkit_endpoints.serving.config import ServerConfig
from genkit_endpoints.serving.runners.uvicorn import uvicorn_config
from tests.support.raw_socket import exchange

# name -> parameters (after self) of every HttpToolsProtocol method the subclass overrides.
OVERRIDDEN = {
    "__init__": None,  # forwarded as *args/**kwargs; only its existence matters
    "connection_made": ["transport"],
    "connection_lost": ["exc"],
    "data_received": ["data"],
    "on_response_complete": [],
    "on_message_begin": [],
    "on_headers_complete": [],
    "on_message_complete": [],
    "send_400_response": ["msg"],
}


@pytest.mark.parametrize("name", sorted(OVERRIDDEN))
def test_every_overridden_protocol_method_exists_with_its_parameters(name: str) -> None:
    stock = HttpToolsProtocol.__dict__.get(name)
    assert callable(stock), f"HttpToolsProtocol.{name} is gone"
    expected = OVERRIDDEN[name]
    if expected is not None:
        assert list(inspect.signature(stock).parameters)[1:] == expected


def test_the_private_keep_alive_helper_the_protocol_calls_still_exists() -> None:
    assert callable(getattr(HttpToolsProtocol, "_unset_keepalive_if_required", None))


async def _tiny_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@contextmanager
def _uvicorn_server(cfg: ServerConfig) -> Iterator[tuple[int, DrainingServer]]:
    """A real uvicorn server on 127.0.0.1, in a thread, configured by the runner."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = DrainingServer(uvicorn_config(_tiny_app, cfg))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "uvicorn did not start"
        yield sock.getsockname()[1], server
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


HEAD = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"


def test_a_real_uvicorn_serves_requests_through_the_hardened_protocol() -> None:
    """A stock httptools protocol answers 200 to 102 header fields; ours refuses more than 100."""
    fields = b"".join(b"x-f%d: v\r\n" % i for i in range(100))
    with _uvicorn_server(ServerConfig(host="127.0.0.1", max_header_count=100)) as (port, server):
        assert server.config.http_protocol_class is HardenedHttpToolsProtocol
        assert exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").startswith(
            b"HTTP/1.1 200"
        )
        refused = exchange(
            port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + fields + b"\r\n"
        )
    assert refused.startswith(b"HTTP/1.1 431 ")


_DRAIN_SCRIPT = """
import signal, uvicorn
from genkit_endpoints.compat.uvicorn import DrainingServer
cls = {cls}
server = cls(uvicorn.Config(lambda *a: None))
with server.capture_signals():
    server.handle_exit(signal.SIGTERM, None)
print("drained")
"""


@pytest.mark.parametrize(("cls", "returncode"), [("uvicorn.Server", -15), ("DrainingServer", 0)])
def test_a_captured_sigterm_is_re_raised_by_uvicorn_and_emptied_by_the_drain(
    cls: str, returncode: int
) -> None:
    """uvicorn re-raises the signals it captured from a private list after serving; the
    draining server empties that list, so a finished drain exits 0, not "killed by
    SIGTERM". The stock case proves the list is still where the subclass looks."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_DRAIN_SCRIPT.format(cls=cls))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == returncode, proc.stderr


_SUPERVISOR_SCRIPT = """
import socket, uvicorn
from genkit_endpoints.compat.uvicorn import DrainingMultiprocess
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
config = uvicorn.Config(lambda *a: None, workers=1)
supervisor = DrainingMultiprocess(config, sockets=[sock])
supervisor.processes_num = 0  # no worker: only the supervisor's own path runs
supervisor.should_exit.set()
supervisor.run()
print(sock.fileno())
"""


def test_the_supervisor_closes_its_listening_socket_when_it_stops() -> None:
    """uvicorn's supervisor calls ``terminate_all`` on its way out; the override closes the
    socket there. In a child process: the supervisor installs signal handlers."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SUPERVISOR_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "-1"  # closed


@pytest.mark.parametrize("version", ["0.33.9", "0.55.0", "0.55.0rc1", "1.0"])
def test_an_out_of_range_uvicorn_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setattr(compat, "installed_version", lambda dist: version)
    with pytest.raises(UnsupportedDependency) as err:
        uvicorn_config(_tiny_app, ServerConfig())
    message = str(err.value)
    assert message.startswith(f"uvicorn {version} is not supported (needs >=0.34,<0.55): ")
    assert "\n" not in message
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("version", ["0.34.0", "0.54.0", "0.54.99.post1"])
def test_the_range_ends_are_where_they_say(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    monkeypatch.setattr(compat, "installed_version", lambda dist: version)
    assert require_uvicorn() == version
