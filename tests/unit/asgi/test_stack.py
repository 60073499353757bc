"""The assembled stack leaves non-HTTP scopes alone."""

from __future__ import annotations

from genkit_endpoints.http.middleware.stack import HttpPolicy, build_stack
from genkit_endpoints.http.types import Message, Receive, Scope, Send


async def test_non_http_scopes_pass_through_untouched() -> None:
    seen: list[str] = []

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    await build_stack(lifespan_app, HttpPolicy(request_timeout=1))(
        {"type": "lifespan"}, receive, send
    )
    assert seen == ["lifespan"]
