# SPDX-License-Identifier: Apache-2.0
"""What the rate limiter is configured with: the rates, the strategy, where to count.

Apart from the limiter, and importing ``limits`` only to parse a rate: the settings
define their fields with these, and reading the settings (``--help``, a bad flag) must
not load the rate-limiting library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

from genkit_endpoints.policies.backends import (
    DEFAULT_NAMESPACE,
    BackendSpec,
    RedisOptions,
    check_namespace,
    parse_backend,
)

if TYPE_CHECKING:
    from limits import RateLimitItem

__all__ = ["STRATEGY_NAMES", "RateLimitConfig", "StrategyName", "parse_rates"]

StrategyName = Literal["moving-window", "sliding-window-counter", "fixed-window"]
STRATEGY_NAMES: tuple[str, ...] = get_args(StrategyName)
_SEPARATORS = re.compile(r"[;,]")


def parse_rates(text: str) -> tuple[RateLimitItem, ...]:
    """``"10/second;100/minute"`` as ``limits`` items. Raises ``ValueError`` naming the bad part."""
    parts = [part.strip() for part in _SEPARATORS.split(text)]
    if not any(parts):
        raise ValueError("the rate limit is empty: give one like '60/minute'")
    from limits import parse  # noqa: PLC0415 - see the module docstring

    items: list[RateLimitItem] = []
    for part in parts:
        if not part:
            raise ValueError(f"empty rate in {text!r}: separate rates with one ';'")
        try:
            item = parse(part)
        except ValueError:
            raise ValueError(
                f"malformed rate {part!r}: use '<count>/<second|minute|hour|day>', "
                "e.g. '60/minute' or '10 per 2 seconds'"
            ) from None
        if item.amount <= 0:
            raise ValueError(f"rate {part!r} admits nothing: the count must be at least 1")
        items.append(item)
    return tuple(items)


@dataclass(frozen=True)
class RateLimitConfig:
    """What to limit and where to count. Validated here, so a bad value fails at start-up.

    ``namespace`` prefixes every Redis key (``<namespace>:rl:…``), so several services or
    test runs can share one Redis without seeing each other's counts.
    """

    rates: str = "60/minute"
    strategy: StrategyName = "moving-window"
    backend: BackendSpec = field(default_factory=lambda: parse_backend(None))
    redis: RedisOptions = field(default_factory=RedisOptions)
    fail_open: bool = True
    outage_log_interval: float = 60.0
    namespace: str = DEFAULT_NAMESPACE

    def __post_init__(self) -> None:
        parse_rates(self.rates)
        if self.strategy not in STRATEGY_NAMES:
            raise ValueError(
                f"unknown rate-limit strategy {self.strategy!r}: use one of "
                + ", ".join(STRATEGY_NAMES)
            )
        if not self.outage_log_interval > 0:
            raise ValueError("outage_log_interval must be a positive number of seconds")
        check_namespace(self.namespace, "rate-limit")
        self.backend.require_client()

    @property
    def items(self) -> tuple[RateLimitItem, ...]:
        return parse_rates(self.rates)
