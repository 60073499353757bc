# SPDX-License-Identifier: Apache-2.0
"""Pure-ASGI middleware, one concern per module.

Never Starlette's base-class middleware: it breaks streaming and context variables, and
runs every request through an extra task and memory stream, which costs throughput.
"""
