# SPDX-License-Identifier: Apache-2.0
"""Timestamps for log lines written on every request, formatted cheaply.

``datetime.now(UTC).isoformat()`` costs more than the rest of an access or audit line's
fields together; ``UtcStamp`` formats the date and time of day once per second and only
the fraction per line.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["UtcStamp"]


class UtcStamp:
    """Now as ISO 8601 in UTC: ``digits`` of the second's fraction (3: milliseconds, 6:
    microseconds) and ``suffix`` for the zone — ``2026-01-31T09:15:02.041+00:00`` as
    ``datetime.isoformat(timespec="milliseconds")`` writes it by default,
    ``…02.041207Z`` with ``digits=6, suffix="Z"`` as structlog's UTC ISO stamper does.
    ``ns`` is the clock (nanoseconds since the epoch)."""

    def __init__(
        self, ns: Callable[[], int] = time.time_ns, *, digits: int = 3, suffix: str = "+00:00"
    ) -> None:
        if digits not in (3, 6):
            raise ValueError("digits must be 3 or 6")
        self._ns = ns
        self._divisor = 10 ** (9 - digits)
        self._fraction = f".{{:0{digits}d}}{suffix}"
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        second, rest = divmod(self._ns(), 1_000_000_000)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return self._prefix + self._fraction.format(rest // self._divisor)
