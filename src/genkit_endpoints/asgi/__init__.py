"""Pure-ASGI middleware, one concern per module.

Never Starlette's base-class middleware: it breaks streaming and context variables and
costs ~25x throughput (STYLE.md rule 1).
"""
