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

Genkit writes every flow's, model's and tool's input and output as JSON into attributes
of its spans (``genkit:input`` / ``genkit:output``) for its Dev UI, on every call, even
when the span records nothing (tracing off) or the kit drops those attributes before
export (prompt and completion capture off, the default). The serialisation is a
module-level helper of Genkit's private ``_core._tracing``; ``set_span_content(False)``
swaps it for one that returns an empty string, and ``set_span_content(True)`` puts
Genkit's back. Upstream, this would be a switch on Genkit's tracer: serialise span
content only when a recording span and a consumer (the Dev UI, an opted-in exporter)
want it. The canary checks that the swap still reaches the attributes Genkit sets.

Genkit runs every model call (and every generate) through its middleware hooks, where
``_ai._generate.hook_wrap`` picks a middleware's ``wrap_<hook>`` method and returns it
through ``cast(HookWrap[P, R], ...)``: that cast subscripts a generic alias with type
variables, typing's slowest path, twice per call for the kit's call policy.
``lighten_hook_dispatch`` replaces the helper with one that returns the same bound method
without the cast (upstream: a cast to a pre-built alias, or no cast). The canary checks
that the replacement returns what Genkit's own does and that Genkit still looks it up by
name on every dispatch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from typing import Any

from genkit import Action, Genkit

from genkit_endpoints.compat import require_supported

__all__ = [
    "flow_function",
    "forget_failed_plugin_inits",
    "lighten_hook_dispatch",
    "require_genkit",
    "set_span_content",
]

_HOOKS = frozenset({"generate", "model", "tool"})

_GENKIT_SERIALISER = "_to_json_attr"
_GENKIT_HOOK_LOOKUP = "hook_wrap"


# Genkit's own helpers, once swapped out, by module and name.
_saved: dict[str, Callable[..., Any]] = {}


def _no_content(value: object) -> str:
    return ""


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


def set_span_content(on: bool) -> bool:
    """Whether Genkit serialises inputs and outputs into its span attributes (see the
    module docstring). Process-wide, like Genkit's tracer. False: this Genkit has no such
    helper, nothing was changed (the kit still drops the content before export)."""
    from genkit._core import _tracing  # noqa: PLC0415 - Genkit internals, only here

    return _swap(_tracing, _GENKIT_SERIALISER, _no_content, use_ours=not on)


def lighten_hook_dispatch(on: bool = True) -> bool:
    """Swap Genkit's middleware-hook lookup for one without a runtime generic cast (see
    the module docstring); ``on=False`` puts Genkit's back. Process-wide and idempotent.
    False: this Genkit has no such helper, nothing was changed."""
    from genkit._ai import _generate  # noqa: PLC0415 - Genkit internals, only here

    return _swap(_generate, _GENKIT_HOOK_LOOKUP, _hook_wrap, use_ours=on)


def _swap(module: Any, name: str, ours: Callable[..., Any], *, use_ours: bool) -> bool:
    """Set ``module.name`` to ``ours`` or back to Genkit's own (kept on the first swap);
    False when Genkit has no such helper."""
    current = getattr(module, name, None)
    if not callable(current):
        return False
    genkit_s = _saved.setdefault(f"{module.__name__}.{name}", current)
    setattr(module, name, ours if use_ours else genkit_s)
    return True


def _hook_wrap(middleware: Any, hook: str) -> Any:
    if hook not in _HOOKS:
        raise ValueError(f"unknown middleware hook {hook!r}")
    return getattr(middleware, f"wrap_{hook}")
