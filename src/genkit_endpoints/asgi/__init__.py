"""Pure-ASGI middleware, one concern per module (no BaseHTTPMiddleware: STYLE.md rule 1)."""
