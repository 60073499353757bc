# SPDX-License-Identifier: Apache-2.0
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

The same dispatch defines its per-hook closures with annotations such as
``Callable[[HookParamsT, GenerateMiddlewareContext], Awaitable[HookResultT]]``; Genkit's
modules do not postpone annotations, so Python builds those generic aliases every time
the closures are defined, which is on every call. ``lighten_hook_dispatch`` also compiles
Genkit's own source of those functions again with postponed annotations (what
``from __future__ import annotations`` does for a whole module): the same code, with the
annotations kept as strings nobody reads at run time. The functions so recompiled are the
hook dispatch, the tool-request loop, the per-model-call stream interceptor and an
action's stream: each defines annotated closures per call. Upstream, this is the one-line
``from __future__ import annotations`` in those modules. The canary checks that Genkit
calls the recompiled functions and that their closures carry string annotations.

Genkit opens a span for every flow, ``generate``, model and tool call through its
``run_in_new_span``, which builds the span's path and attributes and enters
OpenTelemetry's context even when no tracer provider is installed and every span is a
no-op: nothing can read them. ``skip_unconsumed_spans`` swaps that helper, in each Genkit
module that imported it, for one that asks first: with no tracer provider set (tracing
off and no Genkit developer mode, which installs one) and no recording span current, it
yields the current span, exactly the span OpenTelemetry's no-op tracer would have
yielded, and does nothing else; otherwise it is Genkit's own. The check runs per call, so
a provider installed later (by the app, or Genkit's Dev UI) gets every span. Upstream:
skip span bookkeeping when the tracer is a no-op. The canary checks both branches against
Genkit's own spans.

Genkit asks ``is_debug_enabled(logger)`` several times per generate. Its logger is a
wrapper (feeding the Dev UI's log sink) around a structlog logger, and the question goes
through the wrapper's own level check, which imports the log sink's module on every call.
``lighten_debug_checks`` swaps that helper in ``_ai._generate`` for one that asks the
same two things — is the Dev UI's log export on, is the wrapped logger enabled for DEBUG
— directly. Upstream: import once at module level, or cache the level per configuration.
The canary checks that both answer alike, with the export off and on, at DEBUG and above.

``ai.generate`` folds its keyword arguments into the engine's options on every call: it
resolves the model and its config class, builds a ``GenerateCall`` and runs it through
the prompt renderer, the output-schema resolution and the options model, all to arrive at
the same options but for the messages. ``PreparedGenerate`` does that once per kind of
call (per output schema) and then, for a call made of literal parts (no template) and an
optional output schema, only renders the messages — through Genkit's own renderer — and
hands a copy of the prepared options to Genkit's own ``generate_action``, exactly where
``ai.generate`` hands its own. Everything after that (middleware, the tool loop,
structured output, streaming callbacks, spans) is Genkit's. Any other call (a template
string, tools, a model or config of its own) goes through ``ai.generate`` unchanged.
Upstream: a public "prepared generate" that keeps the folded options. The canary checks
that the prepared options equal the ones ``ai.generate`` builds, call after call.

``ai.generate_stream`` runs the generate in a task of its own and hands its chunks over
through a channel: for each open stream one more task, queue and future, and one more
task wake-up per chunk. A caller that consumes the chunks through a callback anyway can
have the same generate run in its own task: ``generate_with_callback`` calls the private
``Genkit._generate`` with ``on_chunk`` — exactly the call ``generate_stream`` makes from
its task. Upstream: ``on_chunk`` on the public ``generate``. The canary checks that the
method still takes ``on_chunk`` and that the chunks and the answer equal
``generate_stream``'s.
"""

from __future__ import annotations
import __future__

import ast
import asyncio
import contextlib
import importlib
import inspect
import logging
import textwrap
from collections.abc import Callable, MutableMapping
from typing import Any

from genkit import Action, Genkit, ModelResponse

from genkit_endpoints.compat import require_supported

__all__ = [
    "PreparedGenerate",
    "flow_function",
    "forget_failed_plugin_inits",
    "generate_with_callback",
    "lighten_debug_checks",
    "lighten_hook_dispatch",
    "require_genkit",
    "set_span_content",
    "skip_unconsumed_spans",
]

_HOOKS = frozenset({"generate", "model", "tool"})

_GENKIT_SERIALISER = "_to_json_attr"
_GENKIT_HOOK_LOOKUP = "hook_wrap"
_GENKIT_SPAN = "run_in_new_span"
_GENKIT_DEBUG_CHECK = "is_debug_enabled"
# Every Genkit module on a serving path that imported the span helper by name.
_SPAN_MODULES = (
    "genkit._core._tracing",
    "genkit._core._action",
    "genkit._ai._generate",
    "genkit._ai._aio",
    "genkit._ai._agents._runtime",
)
# Functions (module, owner class or None, name) that define annotated closures per call.
_POSTPONED = (
    ("genkit._ai._generate", None, "dispatch_hooks"),
    ("genkit._ai._generate", None, "resolve_tool_requests"),
    ("genkit._ai._generate", "ChunkAccumulator", "intercept_model_stream"),
    ("genkit._core._action", "Action", "stream"),
)


# Per swapped (module or class, name): Genkit's own function and ours, made once from it.
_swapped: dict[tuple[Any, str], tuple[Callable[..., Any], Callable[..., Any]]] = {}


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


async def generate_with_callback(
    ai: Genkit, *, on_chunk: Callable[[Any], None], **kwargs: Any
) -> ModelResponse:
    """What ``ai.generate_stream(**kwargs)`` streams, delivered to ``on_chunk`` from the
    caller's own task (see the module docstring)."""
    response: ModelResponse = await ai._generate(on_chunk=on_chunk, **kwargs)
    return response


def set_span_content(on: bool) -> bool:
    """Whether Genkit serialises inputs and outputs into its span attributes (see the
    module docstring). Process-wide, like Genkit's tracer. False: this Genkit has no such
    helper, nothing was changed (the kit still drops the content before export)."""
    from genkit._core import _tracing  # noqa: PLC0415 - Genkit internals, only here

    return _swap(_tracing, _GENKIT_SERIALISER, lambda _: _no_content, use_ours=not on)


def lighten_hook_dispatch(on: bool = True) -> bool:
    """Swap Genkit's middleware-hook lookup for one without a runtime generic cast, and
    its per-call closures' annotations for postponed ones (see the module docstring);
    ``on=False`` puts Genkit's back. Process-wide and idempotent. False: this Genkit
    lacks one of them, and that one was left as it is."""
    from genkit._ai import _generate  # noqa: PLC0415 - Genkit internals, only here

    swapped = _swap(_generate, _GENKIT_HOOK_LOOKUP, lambda _: _hook_wrap, use_ours=on)
    for module_name, owner_name, name in _POSTPONED:
        module = importlib.import_module(module_name)
        owner = module if owner_name is None else getattr(module, owner_name, None)
        if owner is None or not _swap(owner, name, _postponed, use_ours=on):
            swapped = False
    return swapped


def lighten_debug_checks(on: bool = True) -> bool:
    """Genkit's per-generate DEBUG checks without its logger wrapper's detour (see the
    module docstring); ``on=False`` puts Genkit's back. Process-wide and idempotent.
    False: this Genkit has no such helper, nothing was changed."""
    from genkit._ai import _generate  # noqa: PLC0415 - Genkit internals, only here
    from genkit._core._trace import _log_exporter  # noqa: PLC0415

    return _swap(_generate, _GENKIT_DEBUG_CHECK, lambda _: _debug_check(_log_exporter), use_ours=on)


def _debug_check(log_exporter: Any) -> Callable[[Any], bool]:
    # The module, not its function: looked up per call, as Genkit's own import does.
    def is_debug_enabled(logger: Any) -> bool:
        if log_exporter.log_export_is_enabled():
            return True
        # Genkit's wrapper keeps the structlog logger as ``_bound`` and, export off,
        # answers with that logger's own check; any other logger is asked as Genkit would.
        bound = getattr(logger, "_bound", logger)
        for attr in ("is_enabled_for", "isEnabledFor"):
            check = getattr(bound, attr, None)
            if callable(check):
                try:
                    return bool(check(logging.DEBUG))
                except Exception:  # as Genkit: a logger that cannot say counts as enabled
                    return True
        return True

    return is_debug_enabled


def skip_unconsumed_spans(on: bool = True) -> bool:
    """Genkit's spans only when something can consume them (see the module docstring);
    ``on=False`` puts Genkit's own helper back. Process-wide and idempotent. False: this
    Genkit has no such helper, nothing was changed."""
    from genkit._core import _tracing  # noqa: PLC0415 - Genkit internals, only here

    if not _swap(_tracing, _GENKIT_SPAN, _span_if_consumed, use_ours=on):
        return False
    for name in _SPAN_MODULES:
        with contextlib.suppress(ImportError):
            _swap(importlib.import_module(name), _GENKIT_SPAN, _span_if_consumed, use_ours=on)
    return True


def _span_if_consumed(genkit_s: Callable[..., Any]) -> Callable[..., Any]:
    from opentelemetry import trace  # noqa: PLC0415 - with Genkit, which imports it anyway

    no_op_providers = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)

    def run_in_new_span(metadata: Any, links: Any = None) -> Any:
        if isinstance(trace.get_tracer_provider(), no_op_providers):
            current = trace.get_current_span()
            if not current.is_recording():
                # What the no-op tracer starts under a non-recording span: that span.
                return contextlib.nullcontext(current)
        return genkit_s(metadata, links)

    return run_in_new_span


def _postponed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` compiled again from Genkit's own source with postponed annotations.

    Compiled in the function's module namespace, at its own file and line numbers (so
    tracebacks point at Genkit's source), decorators included. Only for functions that
    close over nothing and do not use a bare ``super()``: those would need their cells.
    """
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is None or code.co_freevars:
        raise TypeError(f"{fn.__qualname__} cannot be recompiled")
    source = textwrap.dedent(inspect.getsource(fn))
    tree = ast.parse(source)
    ast.increment_lineno(tree, code.co_firstlineno - 1)
    compiled = compile(
        tree,
        inspect.getsourcefile(fn) or "<genkit>",
        "exec",
        flags=__future__.annotations.compiler_flag,
        dont_inherit=True,
    )
    namespace: dict[str, Any] = {}
    exec(compiled, inspect.unwrap(fn).__globals__, namespace)  # noqa: S102 - Genkit's own source
    new: Callable[..., Any] = namespace[fn.__name__]
    new.__qualname__ = fn.__qualname__
    return new


def _swap(
    owner: Any,
    name: str,
    make_ours: Callable[[Callable[..., Any]], Callable[..., Any]],
    *,
    use_ours: bool,
) -> bool:
    """Set ``owner.name`` (a module's or a class's) to ours, made once by ``make_ours`` from
    Genkit's own, or back to Genkit's own; False when Genkit has no such function there."""
    pair = _swapped.get((owner, name))
    if pair is None:
        genkit_s = getattr(owner, name, None)
        if not callable(genkit_s):
            return False
        pair = _swapped[owner, name] = (genkit_s, make_ours(genkit_s))
    setattr(owner, name, pair[1] if use_ours else pair[0])
    return True


def _hook_wrap(middleware: Any, hook: str) -> Any:
    if hook not in _HOOKS:
        raise ValueError(f"unknown middleware hook {hook!r}")
    return getattr(middleware, f"wrap_{hook}")


# What a prepared call may carry: anything else changes more than the messages.
_PREPARED_ARGS = frozenset({"prompt", "system", "output_schema"})


class PreparedGenerate:
    """``ai.generate`` for literal-part calls, the options folded once (see the module
    docstring). ``accepts`` says whether a call qualifies; ``generate`` runs one."""

    def __init__(self, ai: Genkit, use: list[Any]) -> None:
        self._ai = ai
        self._use = use
        self._templates: dict[Any, Any] = {}  # output schema (or None) -> folded options

    @staticmethod
    def accepts(kwargs: dict[str, Any]) -> bool:
        """A call of literal parts (a list, as ``literal`` builds) and at most an output
        schema given as a class."""
        if not kwargs.keys() <= _PREPARED_ARGS or not isinstance(kwargs.get("prompt"), list):
            return False
        system = kwargs.get("system")
        schema = kwargs.get("output_schema")
        return (system is None or isinstance(system, list)) and (
            schema is None or isinstance(schema, type)
        )

    async def options(self, **kwargs: Any) -> Any:
        """The engine options of this call: the folded ones with this call's messages."""
        from genkit import Role  # noqa: PLC0415 - Genkit internals, only here
        from genkit._ai._prompt import render_template  # noqa: PLC0415

        schema = kwargs.get("output_schema")
        template = self._templates.get(schema)
        if template is None:
            template = await self._fold(schema)
        messages = []
        for role, parts in ((Role.SYSTEM, kwargs.get("system")), (Role.USER, kwargs["prompt"])):
            if parts:
                message, _ = await render_template(
                    registry=self._ai.registry,
                    role=role,
                    template=parts,
                    input={},
                    input_schema=None,
                    metadata=None,
                    compiled_fn=None,
                    context=None,
                )
                messages.append(message)
        return template.model_copy(update={"messages": messages})

    async def generate(
        self, *, on_chunk: Callable[[Any], None] | None = None, **kwargs: Any
    ) -> ModelResponse:
        """What ``ai.generate(use=..., on_chunk=..., **kwargs)`` answers, from the folded
        options."""
        from genkit._ai._generate import generate_action  # noqa: PLC0415
        from genkit._core._action import get_current_context  # noqa: PLC0415

        options = await self.options(**kwargs)
        response: ModelResponse = await generate_action(
            self._ai.registry.new_child(),
            options,
            on_chunk=on_chunk,
            context=get_current_context(),
        )
        return response

    async def _fold(self, schema: type | None) -> Any:
        from genkit._ai._model import resolve_for_generate  # noqa: PLC0415
        from genkit._ai._prompt import GenerateCall, to_generate_options  # noqa: PLC0415

        registry = self._ai.registry
        resolved = await resolve_for_generate(model=None, config=None, registry=registry)
        template = await to_generate_options(
            registry=registry,
            call=GenerateCall(
                model=resolved.name,
                prompt=[],
                config=resolved.config,
                output_schema=schema,
                use=self._use,
            ),
        )
        if len(self._templates) < _MAX_TEMPLATES:
            self._templates[schema] = template
        return template


# One template per output schema a client is called with: a handful of flows' schemas.
_MAX_TEMPLATES = 256
