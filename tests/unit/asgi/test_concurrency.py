# SPDX-License-Identifier: Apache-2.0
"""The in-flight request limit: 503 at once above it, slots always freed."""

from __future__ import annotations

import asyncio
import json

import pytest

from genkit_endpoints.http.middleware.concurrency import ConcurrencyLimitMiddleware
from genkit_endpoints.http.middleware.errors import ErrorEnvelopeMiddleware
from genkit_endpoints.http.middleware.policy import HttpPolicy
from genkit_endpoints.http.types import ASGIApp, Receive, Scope, Send
from tests.unit.asgi._support import json_app
from tests.unit.asgi_helpers import Captured, call, http_scope


class Gate:
    """An app whose requests wait until released (or raise, when told to)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.arrivals: asyncio.Queue[str] = asyncio.Queue()
        self.fail = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.arrivals.put_nowait(scope["path"])
        if scope["path"] not in ("/health", "/ready"):
            await self.release.wait()
        if self.fail:
            raise RuntimeError("handler failed")
        await json_app()(scope, receive, send)


async def fill(app: ASGIApp, gate: Gate, n: int) -> list[asyncio.Task[Captured]]:
    tasks = [asyncio.create_task(call(app, http_scope("/work"))) for _ in range(n)]
    async with asyncio.timeout(2):
        for _ in range(n):
            await gate.arrivals.get()
    return tasks


async def test_above_the_limit_requests_get_503_at_once_and_probes_still_pass() -> None:
    gate = Gate()
    app = ErrorEnvelopeMiddleware(
        ConcurrencyLimitMiddleware(gate, 3, exempt_paths={"/health", "/ready"})
    )
    held = await fill(app, gate, 3)
    over = await asyncio.wait_for(call(app, http_scope("/work")), 1)
    health = await asyncio.wait_for(call(app, http_scope("/health")), 1)
    ready = await asyncio.wait_for(call(app, http_scope("/ready")), 1)
    assert over.status == 503
    assert over.headers[b"retry-after"] == b"1"
    assert json.loads(over.body)["status"] == 503
    assert health.status == ready.status == 200
    gate.release.set()
    assert [t.status for t in await asyncio.gather(*held)] == [200, 200, 200]
    assert (await call(app, http_scope("/work"))).status == 200


async def test_slots_are_freed_when_handlers_fail() -> None:
    gate = Gate()
    limited = ConcurrencyLimitMiddleware(gate, 2)
    app = ErrorEnvelopeMiddleware(limited)
    held = await fill(app, gate, 2)
    gate.fail = True
    gate.release.set()
    assert [t.status for t in await asyncio.gather(*held)] == [500, 500]
    assert limited.in_flight == 0
    gate.fail = False
    assert (await call(app, http_scope("/work"))).status == 200


async def test_slots_are_freed_when_requests_are_cancelled() -> None:
    gate = Gate()
    limited = ConcurrencyLimitMiddleware(gate, 2)
    held = await fill(limited, gate, 2)
    for task in held:
        task.cancel()
    await asyncio.gather(*held, return_exceptions=True)
    assert limited.in_flight == 0
    gate.release.set()
    assert (await call(limited, http_scope("/work"))).status == 200


def test_concurrency_limit_below_one_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ConcurrencyLimitMiddleware(json_app(), 0)
    with pytest.raises(ValueError, match="at least 1"):
        HttpPolicy(max_concurrent_requests=0)
