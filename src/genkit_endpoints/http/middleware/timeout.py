# SPDX-License-Identifier: Apache-2.0
"""Request timeout: 504 problem+json when no response has started within the limit.

One timer handle per request (``loop.call_later`` cancelling the request's task), no
extra task: a timer handle costs far less than a task per request. The timer is disarmed
at ``http.response.start``: a stream that has started is governed by its own model
deadlines, not by this limit.
"""

from __future__ import annotations

import asyncio

from genkit_endpoints.core.errors import UpstreamTimeout
from genkit_endpoints.http.middleware.errors import request_path, send_problem
from genkit_endpoints.http.types import ASGIApp, Message, Receive, Scope, Send


class RequestTimeoutError(UpstreamTimeout):
    default_detail = "The request took too long to process."


class TimeoutMiddleware:
    def __init__(self, app: ASGIApp, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError("request timeout must be positive")
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - ASGI apps always run inside a task
        # [response started, timer fired]; a list, not nonlocals, keeps the closures cheap.
        state = [False, False]

        def expire() -> None:
            if not state[0]:
                state[1] = True
                task.cancel()

        # A bare timer handle costs half of `asyncio.timeout()` per request (measured).
        handle = asyncio.get_running_loop().call_later(self.timeout, expire)

        async def send_disarming(message: Message) -> None:
            if not state[0] and message["type"] == "http.response.start":
                state[0] = True
                handle.cancel()
            await send(message)

        try:
            await self.app(scope, receive, send_disarming)
        except asyncio.CancelledError:
            # Our own cancel, and nobody else's (a server shutdown also cancels): answer.
            if state[1] and task.uncancel() == 0:
                await send_problem(send, RequestTimeoutError(), request_path(scope))
                return
            raise
        finally:
            handle.cancel()
