# SPDX-License-Identifier: Apache-2.0
"""The per-line UTC timestamps of the access and audit logs, against datetime's own."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from genkit_endpoints.core.timestamps import UtcStamp

NOW = datetime(2025, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)
# Within one second, the next second, midnight and a new year.
INSTANTS = [
    [NOW, NOW.replace(microsecond=999_999), NOW.replace(second=6, microsecond=1)],
    [datetime(2025, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC),
     datetime(2026, 1, 1, 0, 0, 0, 7, tzinfo=UTC)],
]  # fmt: skip


def ticks(instants: list[datetime]) -> UtcStamp:
    ns = iter([int(t.timestamp()) * 10**9 + t.microsecond * 1000 for t in instants])
    return UtcStamp(lambda: next(ns))


@pytest.mark.parametrize("instants", INSTANTS)
def test_milliseconds_with_an_offset_as_datetime_writes_them(instants: list[datetime]) -> None:
    stamp = ticks(instants)
    assert [stamp() for _ in instants] == [t.isoformat(timespec="milliseconds") for t in instants]


@pytest.mark.parametrize("instants", INSTANTS)
def test_microseconds_with_a_z_as_structlog_writes_them(instants: list[datetime]) -> None:
    ns = iter([int(t.timestamp()) * 10**9 + t.microsecond * 1000 for t in instants])
    stamp = UtcStamp(lambda: next(ns), digits=6, suffix="Z")
    assert [stamp() for _ in instants] == [t.isoformat().replace("+00:00", "Z") for t in instants]


def test_only_milliseconds_or_microseconds() -> None:
    with pytest.raises(ValueError, match="digits"):
        UtcStamp(digits=9)
