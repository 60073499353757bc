# SPDX-License-Identifier: Apache-2.0
"""The circuit breaker around model calls: ``Breaker`` over a ``BreakerStore``.

The names load their modules on first use (``genkit_endpoints.core.lazy``): the settings
read ``BreakerConfig`` without importing the breaker and its logging.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genkit_endpoints.core.lazy import lazy_exports

if TYPE_CHECKING:
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

_BASE = "genkit_endpoints.policies.breaker.base"
_MEMORY = "genkit_endpoints.policies.breaker.memory"
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BreakerConfig": _BASE,
        "BreakerOpen": _BASE,
        "BreakerState": _BASE,
        "BreakerStore": _BASE,
        "counts_as_failure": _BASE,
        "Breaker": "genkit_endpoints.policies.breaker.circuit",
        "LocalBreakerState": _MEMORY,
        "MemoryBreakerStore": _MEMORY,
    },
    __all__,
)
