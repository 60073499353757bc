"""REST + SSE: handlers, the ASGI middleware stack and the framework adapters."""
