"""Readiness as its owners push it: the report, the drain and the change notifications."""

from __future__ import annotations

from genkit_endpoints.core.health import Readiness


def test_ready_when_every_component_is_ok_and_not_draining() -> None:
    readiness = Readiness()
    assert readiness.report() == (True, {"shutdown": "ok"})
    readiness.set_status("model", "failing")
    assert readiness.report() == (False, {"model": "failing", "shutdown": "ok"})
    readiness.set_status("model", "ok")
    assert readiness.ready
    readiness.start_draining()
    assert readiness.report() == (False, {"model": "ok", "shutdown": "draining"})
    readiness.set_status("model", "ok")
    assert not readiness.ready  # a drain is for good


def test_subscribers_hear_each_change_once_until_they_unsubscribe() -> None:
    readiness = Readiness()
    seen: list[bool] = []
    unsubscribe = readiness.subscribe(lambda: seen.append(readiness.ready))
    readiness.set_status("model", "failing")
    readiness.set_status("model", "failing")  # no change, no call
    readiness.set_status("model", "ok")
    readiness.start_draining()
    readiness.start_draining()
    assert seen == [False, True, False]
    unsubscribe()
    readiness.set_status("model", "failing")
    assert seen == [False, True, False]


def test_a_failing_subscriber_neither_stops_the_change_nor_the_others() -> None:
    readiness = Readiness()
    seen: list[bool] = []

    def broken() -> None:
        raise RuntimeError("subscriber bug")

    readiness.subscribe(broken)
    readiness.subscribe(lambda: seen.append(readiness.ready))
    readiness.start_draining()  # runs in a signal handler in production: must not raise
    assert readiness.draining
    assert seen == [False]
