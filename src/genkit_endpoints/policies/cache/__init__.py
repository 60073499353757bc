"""The flow cache: ``FlowCache`` over a ``CacheStore`` (``memory`` or ``redis``)."""

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
