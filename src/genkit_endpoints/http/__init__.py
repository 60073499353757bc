# SPDX-License-Identifier: Apache-2.0
"""REST + SSE: handlers, the ASGI middleware stack and the framework adapters."""
