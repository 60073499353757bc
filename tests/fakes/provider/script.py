# SPDX-License-Identifier: Apache-2.0
"""What a test scripts and what the fake records: the data types of the fake provider.

`Reply`, `ToolCall` and `Fault` are the steps a test queues with `FakeProvider.script`;
`RecordedRequest` is one request as the fake received and classified it. `usage` is the
token usage both wires report for a reply: word counts, not real tokens, because tests only
need stable, plausible numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Wire = Literal["gemini", "openai"]
Kind = Literal["generate", "list", "other"]


@dataclass(frozen=True)
class ToolCall:
    """A function call the fake model asks the client to run."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class Reply:
    """A successful model turn; streamed per word unless `chunks` is given.

    `finish_reason` overrides the wire-native value (`STOP`/`stop`, or `tool_calls` on OpenAI
    when the reply calls tools); `chunk_delay` pauses before every chunk after the first.
    """

    text: str = ""
    tool_call: ToolCall | None = None
    tool_calls: Sequence[ToolCall] = ()
    chunks: Sequence[str] | None = None
    chunk_delay: float = 0.0
    finish_reason: str | None = None

    @property
    def all_tool_calls(self) -> tuple[ToolCall, ...]:
        """`tool_calls` plus the `tool_call` shorthand."""
        return (*self.tool_calls, *((self.tool_call,) if self.tool_call else ()))

    def pieces(self) -> list[str]:
        """The text chunks of a streamed reply; they concatenate back to `text`."""
        if self.chunks is not None:
            return list(self.chunks)
        return re.findall(r"\s*\S+\s*", self.text) or ([self.text] if self.text else [])


FaultKind = Literal["status", "hang", "slow_first_chunk", "drop_after"]


@dataclass(frozen=True)
class Fault:
    """A misbehaviour for one generation request; build it with the class methods."""

    kind: FaultKind
    code: int = 500
    message: str | None = None
    retry_after: float | str | None = None
    seconds: float = 0.0
    chunks: int = 0
    reply: Reply | None = None

    @classmethod
    def status(
        cls, code: int, *, message: str | None = None, retry_after: float | str | None = None
    ) -> Fault:
        """Answer with HTTP `code` and the wire's JSON error body (plus `Retry-After`)."""
        return cls("status", code=code, message=message, retry_after=retry_after)

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = 1) -> Fault:
        """A 429 with `Retry-After`, as both providers send when a quota runs out."""
        return cls.status(429, message="Resource has been exhausted.", retry_after=retry_after)

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        """Send nothing for up to `seconds`, then close the connection without a response.

        Ends early when the client disconnects or the fake stops.
        """
        return cls("hang", seconds=seconds)

    @classmethod
    def slow_first_chunk(cls, seconds: float, reply: Reply | None = None) -> Fault:
        """Send the status line and headers at once, then wait `seconds` before the body."""
        return cls("slow_first_chunk", seconds=seconds, reply=reply)

    @classmethod
    def drop_after(cls, chunks: int, reply: Reply | None = None) -> Fault:
        """Stream `chunks` chunks of `reply` (default reply if None), then cut the connection.

        A unary request gets its headers and half its body before the cut (nothing at all
        when `chunks` is 0).
        """
        return cls("drop_after", chunks=chunks, reply=reply)


Step = Reply | Fault


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it; `body` is the parsed JSON (None if not JSON)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any
    wire: Wire | None
    kind: Kind
    model: str | None
    streaming: bool
    json_mode: bool


def usage(reply: Reply, request: RecordedRequest) -> tuple[int, int]:
    """Prompt and output token counts: words in the request's turns and in the reply."""
    body = request.body if isinstance(request.body, Mapping) else {}
    prompt = _words(body.get("contents") or body.get("messages") or [])
    return max(prompt, 1), _words(reply.text) + len(reply.all_tool_calls)


def _words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, Mapping):
        return sum(_words(v) for v in value.values())
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    return 0
