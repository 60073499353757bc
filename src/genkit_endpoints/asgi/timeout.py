"""Request timeout: 504 problem+json when no response has started within the limit.

One timer per request (``asyncio.timeout``, a ``call_at`` handle), no extra task
(STYLE.md performance notes). The timer is disarmed at ``http.response.start``: a stream
that has started is governed by its own model deadlines, not by this limit (SPEC §4.1).
"""

from __future__ import annotations

import asyncio

from genkit_endpoints.asgi.errors import send_problem
from genkit_endpoints.asgi.types import ASGIApp, Message, Receive, Scope, Send
from genkit_endpoints.errors import UpstreamTimeout


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
        started = False
        try:
            async with asyncio.timeout(self.timeout) as timer:

                async def send_disarming(message: Message) -> None:
                    nonlocal started
                    if not started and message["type"] == "http.response.start":
                        started = True
                        timer.reschedule(None)
                    await send(message)

                await self.app(scope, receive, send_disarming)
        except TimeoutError:
            if started or not timer.expired():
                raise  # not our timer: the app's own timeout error, for the envelope
            await send_problem(send, RequestTimeoutError(), scope.get("path", ""))
