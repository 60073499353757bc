# SPDX-License-Identifier: Apache-2.0
"""granian internals the granian runner builds on.

* ``MPServer``: granian's documented entry point, ``granian.Granian``, is the
  multi-process server on a regular build but the multi-threaded one on a free-threaded
  Python. The runner needs processes (each worker a fresh interpreter that builds its own
  app through our loader, passed as ``serve(target_loader=...)``), so it names the class,
  which granian does not export.
* ``ROUTE_TO_ROOT``: granian's logging dict, replaced. It names granian's own loggers,
  one of them private (``_granian``); a renamed logger would keep granian's console
  handler and format.

``require_granian`` checks the installed granian against the range in
``genkit_endpoints.compat.SUPPORTED``; the runner calls it in the supervisor, before any
worker starts.
"""

from __future__ import annotations

from typing import Any

from granian.server.mp import MPServer

from genkit_endpoints.compat import require_supported

__all__ = ["ROUTE_TO_ROOT", "MPServer", "require_granian"]

# Replaces granian's logging dict (console handlers on stdout with their own format): its
# loggers keep no handler and propagate to the root logger, which
# ``genkit_endpoints.serving.logging`` configures — in workers too, once the factory ran.
ROUTE_TO_ROOT: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {},
    "handlers": {},
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": True},
    },
}


def require_granian() -> str:
    """The installed granian version; ``UnsupportedDependency`` outside the checked range."""
    return require_supported("granian")
