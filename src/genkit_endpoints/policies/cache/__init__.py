# SPDX-License-Identifier: Apache-2.0
"""The flow cache: ``FlowCache`` over a ``CacheStore`` (``memory`` or ``redis``).

The names load their modules on first use (``genkit_endpoints.core.lazy``): the settings
read ``CacheConfig`` without importing the cache and its logging.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genkit_endpoints.core.lazy import lazy_exports

if TYPE_CHECKING:
    from genkit_endpoints.policies.cache.base import CacheConfig, CacheStore, Lease
    from genkit_endpoints.policies.cache.flow import Flight, FlowCache
    from genkit_endpoints.policies.cache.memory import MemoryStore

__all__ = [
    "CacheConfig",
    "CacheStore",
    "Flight",
    "FlowCache",
    "Lease",
    "MemoryStore",
]

_BASE = "genkit_endpoints.policies.cache.base"
_FLOW = "genkit_endpoints.policies.cache.flow"
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CacheConfig": _BASE,
        "CacheStore": _BASE,
        "Lease": _BASE,
        "Flight": _FLOW,
        "FlowCache": _FLOW,
        "MemoryStore": "genkit_endpoints.policies.cache.memory",
    },
    __all__,
)
