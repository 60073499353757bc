# SPDX-License-Identifier: Apache-2.0
"""A local fake LLM provider: Gemini REST and OpenAI chat completions on 127.0.0.1, with faults.

`FakeProvider` is a real HTTP/1.1 server on a free loopback port, run by a background thread
with its own event loop, so it serves async tests in the pytest process and app subprocesses
alike. It speaks just enough of two wires for the real `genkit_google_genai` and
`genkit_openai` plugins: Gemini `GET /v1beta/models` (paginated), `:generateContent` and
`:streamGenerateContent?alt=sse`; OpenAI `GET /v1/models` and `POST /v1/chat/completions`
(unary and `stream: true`). It counts the TCP connections it accepts (`connections_accepted`),
so tests see whether clients reuse connections. Each generation request consumes the next
scripted `Reply` or `Fault` (FIFO, shared by both wires), then `default`; model listings
never consume the script.
Faults: any HTTP status in the wire's error shape (with `Retry-After`), a hang, a slow first
chunk, and a connection cut after N chunks (the client sees an incomplete body, not a clean
end). Limits: plain HTTP/1.1 (no TLS, HTTP/2, compression or pipelining); Gemini under
`/v1beta` only; one candidate/choice; text and function calls only (no media, embeddings, files
or caching); request bodies are recorded, not validated; token counts are word counts; JSON
mode is not enforced -- the scripted text is sent as is, so tests script valid or invalid JSON.
Modules: `script` (the data types), `server` (`FakeProvider`), `exchange` (one request and
its response), `gemini` and `openai` (each wire's bodies and frames).
"""

from tests.fakes.provider.exchange import iter_sse_data
from tests.fakes.provider.script import (
    Fault,
    FaultKind,
    Kind,
    RecordedRequest,
    Reply,
    Step,
    ToolCall,
    Wire,
)
from tests.fakes.provider.server import FakeProvider

__all__ = [
    "FakeProvider",
    "Fault",
    "FaultKind",
    "Kind",
    "RecordedRequest",
    "Reply",
    "Step",
    "ToolCall",
    "Wire",
    "iter_sse_data",
]
