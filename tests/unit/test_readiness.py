# SPDX-License-Identifier: Apache-2.0
"""Readiness as its owners push it: the report, the drain and the change notifications,
and what ``GET /ready`` answers for ok, degraded and failing components."""

from __future__ import annotations

import json

from genkit_endpoints.core.health import Readiness
from genkit_endpoints.http.handlers import ready


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


def test_a_degraded_component_keeps_the_service_ready_and_says_so() -> None:
    """A Redis whose features fall back: still ready (pulling every replica out of the
    balancer would turn a degraded API into an outage), and ``/ready`` shows it."""
    readiness = Readiness()
    readiness.set_status("model", "ok")
    readiness.set_status("redis:cache", "degraded")
    assert readiness.ready
    assert readiness.report() == (
        True,
        {"model": "ok", "redis:cache": "degraded", "shutdown": "ok"},
    )
    assert _ready_reply(readiness) == (200, "degraded")
    readiness.set_status("redis:cache", "ok")
    assert _ready_reply(readiness) == (200, "ok")


def test_a_failing_component_makes_the_service_unready_whatever_else_is_degraded() -> None:
    readiness = Readiness()
    readiness.set_status("redis:cache", "degraded")
    readiness.set_status("redis:rate_limit", "failing")
    assert not readiness.ready
    assert _ready_reply(readiness) == (503, "unavailable")
    readiness.set_status("redis:rate_limit", "ok")
    assert _ready_reply(readiness) == (200, "degraded")


def test_draining_is_not_ready_even_when_only_degraded() -> None:
    readiness = Readiness()
    readiness.set_status("redis:cache", "degraded")
    readiness.start_draining()
    assert not readiness.ready
    assert _ready_reply(readiness) == (503, "unavailable")
    assert readiness.report()[1]["shutdown"] == "draining"


def _ready_reply(readiness: Readiness) -> tuple[int, str]:
    """What ``GET /ready`` answers: the status code and the body's ``status``."""
    reply = ready(readiness)
    body = json.loads(reply.body)
    assert body["checks"] == readiness.report()[1]
    return reply.status, body["status"]
