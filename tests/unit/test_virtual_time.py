# SPDX-License-Identifier: Apache-2.0
"""The virtual-time loop the timing tests rely on: the clock jumps, timer order is kept."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.virtual_time import run_virtual, run_virtual_raising


def test_sleeps_take_their_virtual_time_at_once_in_timer_order() -> None:
    order: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        order.append((name, asyncio.get_running_loop().time()))

    async def main() -> None:
        await asyncio.gather(sleeper("late", 3600), sleeper("early", 0.25))

    _, took = run_virtual(main())
    assert took == 3600
    assert order == [("early", 0.25), ("late", 3600)]


def test_a_timeout_fires_at_its_deadline() -> None:
    async def hang() -> None:
        async with asyncio.timeout(0.2):
            await asyncio.Event().wait()

    error, took = run_virtual_raising(hang(), TimeoutError)
    assert isinstance(error, TimeoutError)
    assert took == pytest.approx(0.2)
