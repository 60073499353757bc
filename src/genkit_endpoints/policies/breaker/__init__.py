"""The circuit breaker around model calls: ``Breaker`` over a ``BreakerStore``."""

from genkit_endpoints.policies.breaker.base import (
    BreakerConfig,
    BreakerOpen,
    BreakerState,
    BreakerStore,
    counts_as_failure,
)
from genkit_endpoints.policies.breaker.circuit import Breaker
from genkit_endpoints.policies.breaker.memory import LocalBreakerState, MemoryBreakerStore

__all__ = [
    "Breaker",
    "BreakerConfig",
    "BreakerOpen",
    "BreakerState",
    "BreakerStore",
    "LocalBreakerState",
    "MemoryBreakerStore",
    "counts_as_failure",
]
