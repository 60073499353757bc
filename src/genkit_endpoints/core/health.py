# SPDX-License-Identifier: Apache-2.0
"""Readiness: the state of the parts a ready service needs, pushed by the parts' owners.

Nothing is checked when someone asks. Each owner sets its component's status as soon as
it notices a change (the model warm-up marks ``model`` ok once the provider answered;
the first shutdown signal starts the drain), so ``/ready`` is a dictionary read that
never calls a model, and subscribers — gRPC health — hear of every change at once
instead of polling for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Literal

import structlog

_log = structlog.get_logger(__name__)

# ok: usable. degraded: down, but the service absorbs it (a Redis whose features fall
# back) — still ready, since pulling every replica out of the load balancer would turn a
# degraded API into an outage. failing: the service cannot serve without it. The service
# is ready when no component is failing and it is not draining.
Status = Literal["ok", "degraded", "failing"]


class Readiness:
    """Named component statuses plus the drain flag set at the first shutdown signal."""

    def __init__(self) -> None:
        self._components: dict[str, Status] = {}
        self._draining = False
        self._subscribers: list[Callable[[], None]] = []

    def set_status(self, component: str, status: Status) -> None:
        """Record ``component``'s status; a new name joins the report from now on.

        Owners declare their component early (e.g. "failing" until warmed up) so the
        service is not reported ready before they had their say.
        """
        if self._components.get(component) == status:
            return
        self._components[component] = status
        self._notify()

    def start_draining(self) -> None:
        """Not ready from now on, whatever the components say; later calls do nothing."""
        if self._draining:
            return
        self._draining = True
        self._notify()

    def components(self) -> dict[str, Status]:
        """Every component's status (a copy)."""
        return dict(self._components)

    def status(self, component: str) -> Status | None:
        """``component``'s status, None if it never reported."""
        return self._components.get(component)

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def ready(self) -> bool:
        return not self._draining and all(s != "failing" for s in self._components.values())

    def report(self) -> tuple[bool, dict[str, str]]:
        """(ready, {component: "ok" | "degraded" | "failing", "shutdown": "ok" | "draining"})."""
        checks: dict[str, str] = dict(self._components)
        checks["shutdown"] = "draining" if self._draining else "ok"
        return self.ready, checks

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` after every change until the returned function is called.

        It runs synchronously inside the call that made the change — the drain starts
        from a signal handler — so it must be quick and must not block: read ``ready``
        and schedule any async work (``loop.call_soon_threadsafe``).
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def _notify(self) -> None:
        for callback in tuple(self._subscribers):
            try:
                callback()
            except Exception:  # the owner's change stands; the other subscribers still hear
                _log.exception("readiness_subscriber_failed")
