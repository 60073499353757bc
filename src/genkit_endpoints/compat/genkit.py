"""Genkit internals the kit builds on: the model warm-up's retry and a flow's function.

Genkit keeps one plugin-initialisation task per plugin and event loop, and re-raises a
failed one on every later call for the life of the process: a provider that was down
when the service started would stay "down" after it came back. There is no public way
to retry, so ``forget_failed_plugin_inits`` drops the failed tasks from the registry's
private ``_plugin_init_tasks`` (loop -> plugin name -> task), and the next call runs the
initialisation again. Guarded: a Genkit without that state degrades to "no retry", not a
crash. ``require_genkit`` checks the installed Genkit against the range in
``genkit_endpoints.compat.SUPPORTED``; the warm-up calls it when it is built.

A flow's cache version hashes the source of the function the flow wraps. Genkit's
``Action`` keeps that function in its private ``_fn`` and offers no accessor, so
``flow_function`` reads it here and nowhere else. Without the attribute it answers None
and a cacheable route without an explicit version is refused when its table is built —
loudly, never a version that silently stops changing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from typing import Any

from genkit import Action, Genkit

from genkit_endpoints.compat import require_supported

__all__ = ["flow_function", "forget_failed_plugin_inits", "require_genkit"]


def require_genkit() -> str:
    """The installed Genkit version; ``UnsupportedDependency`` outside the checked range."""
    return require_supported("genkit")


def forget_failed_plugin_inits(ai: Genkit) -> None:
    """Drop this event loop's failed or cancelled plugin initialisations, so they run again."""
    per_loop = getattr(ai.registry, "_plugin_init_tasks", None)
    if not isinstance(per_loop, MutableMapping):  # a WeakKeyDictionary in 0.12
        return
    tasks = per_loop.get(asyncio.get_running_loop(), {})
    for name, task in list(tasks.items()):
        if task.done() and (task.cancelled() or task.exception() is not None):
            del tasks[name]


def flow_function(flow: Any) -> Callable[..., Any] | None:
    """The function a Genkit flow wraps; a plain callable is its own function."""
    fn = getattr(flow, "_fn", None) if isinstance(flow, Action) else flow
    return fn if callable(fn) else None
