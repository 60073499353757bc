# SPDX-License-Identifier: Apache-2.0
"""Canary for the Genkit internals in ``genkit_endpoints.compat.genkit``.

Genkit remembers a failed plugin initialisation per event loop and re-raises it on
every later call; the warm-up drops it from the registry's private state so a provider
that was down at start-up is retried. These tests fail when a Genkit release moves that
state (the retry would silently stop working) or starts retrying by itself (the hook
would be dead code). The span-content switch must still reach the attributes Genkit
writes, or every call would go back to serialising its input and output for nothing; the
lighter middleware-hook lookup must return what Genkit's own does and still be the one
Genkit calls.
Run them before widening the Genkit range.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import MutableMapping
from typing import Any, ClassVar

import pytest
from genkit import Genkit, MiddlewareRef
from genkit._ai import _aio, _generate
from genkit._core import _logger, _tracing
from genkit._core._trace import _log_exporter
from genkit._core._tracing import SpanMetadata, record_span_outcome, start_attributes
from genkit.middleware import BaseMiddleware
from genkit.plugin_api import Action, ActionKind, ActionMetadata, Plugin
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util.types import Attributes
from pydantic import BaseModel

from genkit_endpoints import compat
from genkit_endpoints.compat import UnsupportedDependency
from genkit_endpoints.compat.genkit import (
    PreparedGenerate,
    flow_function,
    generate_with_callback,
    lighten_debug_checks,
    lighten_hook_dispatch,
    require_genkit,
    set_span_content,
    skip_unconsumed_spans,
)
from genkit_endpoints.core.health import Readiness
from genkit_endpoints.model.config import ProviderConfig
from genkit_endpoints.model.prompts import literal
from genkit_endpoints.model.providers import WarmUp, choose_model, warm_up
from genkit_endpoints.serving.logging import configure_logging


class ProviderDownOnce(Plugin):
    """A provider plugin whose first start-up fails, as when the provider is unreachable."""

    name = "down-once"

    def __init__(self) -> None:
        self.inits = 0

    async def init(self) -> list[Action]:
        self.inits += 1
        if self.inits == 1:
            raise ConnectionError("provider unreachable")
        return []

    async def resolve(self, action_type: ActionKind, name: str) -> Action | None:
        return None

    async def list_actions(self) -> list[ActionMetadata]:
        return []


async def test_genkit_keeps_re_raising_a_failed_plugin_start_up_by_itself() -> None:
    """Without the hook the second attempt never reaches the plugin: what it works around."""
    plugin = ProviderDownOnce()
    ai = Genkit(plugins=[plugin])
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await ai.registry.initialize_all_plugins()
    assert plugin.inits == 1


async def test_the_warm_up_retries_a_plugin_whose_start_up_failed() -> None:
    plugin = ProviderDownOnce()
    ai = Genkit(plugins=[plugin])
    assert isinstance(getattr(ai.registry, "_plugin_init_tasks", None), MutableMapping)
    assert await warm_up(ai) is False
    assert await warm_up(ai) is True
    assert plugin.inits == 2


@pytest.mark.parametrize("version", ["0.11.2", "0.13.0", "1.0.0"])
def test_an_out_of_range_genkit_is_one_clear_line_at_start_up(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    """Choosing the model (every process does, first) and building the warm-up refuse it."""
    monkeypatch.setattr(compat, "installed_version", lambda dist: version)
    with pytest.raises(UnsupportedDependency) as chosen:
        choose_model(ProviderConfig())
    with pytest.raises(UnsupportedDependency) as built:
        WarmUp(Genkit(), Readiness())
    message = str(chosen.value)
    assert message == str(built.value)
    assert message.startswith(f"genkit {version} is not supported (needs >=0.12,<0.13): ")
    assert "\n" not in message


def test_the_locked_genkit_is_in_range() -> None:
    assert require_genkit() == "0.12.0"


def test_a_flow_s_function_is_the_decorated_function() -> None:
    """Canary: cache versions hash the source of the function a flow wraps."""
    ai = Genkit()

    async def shout(text: str) -> str:
        return text.upper()

    flow = ai.flow()(shout)
    assert flow_function(flow) is shout
    assert flow_function(shout) is shout


def test_genkit_s_span_content_can_be_switched_off_and_back_on() -> None:
    """Canary: the attributes Genkit opens and closes its spans with, through its helpers."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("genkit-like")
    meta = SpanMetadata(name="tellJoke", input={"name": "Mittens"}, output="A joke.")

    def genkit_span() -> Attributes:
        start = start_attributes(meta, qualified_path="/{tellJoke,t:flow}")
        with (
            tracer.start_as_current_span("tellJoke", attributes=start) as span,
            record_span_outcome(span, meta),
        ):
            pass
        return exporter.get_finished_spans()[-1].attributes

    try:
        assert set_span_content(False) is True
        off = genkit_span()
        assert off is not None
        assert (off["genkit:input"], off["genkit:output"]) == ("", "")
        assert (off["genkit:name"], off["genkit:state"]) == ("tellJoke", "success")
    finally:
        assert set_span_content(True) is True
    on = genkit_span()
    assert on is not None
    assert json.loads(str(on["genkit:input"])) == {"name": "Mittens"}
    assert json.loads(str(on["genkit:output"])) == "A joke."


class SeesEveryHook(BaseMiddleware):
    """A middleware that notes each hook Genkit runs it for, and passes the call on."""

    seen: ClassVar[list[str]] = []

    async def wrap_generate(self, params: Any, ctx: Any, next_fn: Any) -> Any:
        self.seen.append("generate")
        return await next_fn(params, ctx)

    async def wrap_model(self, params: Any, ctx: Any, next_fn: Any) -> Any:
        self.seen.append("model")
        return await next_fn(params, ctx)


async def test_the_lighter_hook_lookup_is_the_one_genkit_dispatches_through() -> None:
    middleware = SeesEveryHook()
    try:
        assert lighten_hook_dispatch(False) is True
        original = _generate.hook_wrap  # Genkit's own
        assert lighten_hook_dispatch() is True
        lighter = _generate.hook_wrap
        assert lighter is not original
        for hook in ("generate", "model", "tool"):
            assert lighter(middleware, hook) == original(middleware, hook)
        with pytest.raises(ValueError, match="unknown middleware hook"):
            lighter(middleware, "nonsense")
        # Genkit looks the helper up by name on each dispatch: a generate through a
        # registered middleware goes through the replacement, hooks and answer intact.
        looked_up: list[str] = []

        def counting(mw: Any, hook: str) -> Any:
            looked_up.append(hook)
            return lighter(mw, hook)

        _generate.hook_wrap = counting
        choice = choose_model(ProviderConfig())
        ai = Genkit(plugins=list(choice.plugins), model=choice.model)
        ai.define_middleware(SeesEveryHook, name="sees-every-hook")
        SeesEveryHook.seen.clear()
        response = await ai.generate(
            prompt="Tell a joke about Mittens.", use=[MiddlewareRef(name="sees-every-hook")]
        )
        assert response.text
        assert SeesEveryHook.seen == ["generate", "model"]
        assert looked_up == ["generate", "model"]
    finally:
        lighten_hook_dispatch()  # as a built service leaves it


class KeepsItsNext(BaseMiddleware):
    """A middleware that keeps the ``next_fn`` Genkit hands its model hook."""

    nexts: ClassVar[list[Any]] = []

    async def wrap_model(self, params: Any, ctx: Any, next_fn: Any) -> Any:
        self.nexts.append(next_fn)
        return await next_fn(params, ctx)


def _joke_flow() -> tuple[Genkit, Any]:
    choice = choose_model(ProviderConfig())
    ai = Genkit(plugins=list(choice.plugins), model=choice.model)

    @ai.flow()
    async def joke(name: str) -> str:
        return (await ai.generate(prompt=f"Tell a joke about {name}.")).text

    return ai, joke


async def test_genkit_calls_its_hook_dispatch_recompiled_with_postponed_annotations() -> None:
    """Canary: the closures Genkit defines per call no longer build generic aliases."""
    ai, _ = _joke_flow()
    ai.define_middleware(KeepsItsNext, name="keeps-its-next")
    # Two of them: the outer one's next is a closure the dispatch defined for the call.
    use = [MiddlewareRef(name="keeps-its-next")] * 2

    async def next_annotations() -> tuple[str, list[object]]:
        KeepsItsNext.nexts.clear()
        response = await ai.generate(prompt="Tell a joke about Mittens.", use=use)
        outer_next, _ = KeepsItsNext.nexts
        return response.text, list(outer_next.__annotations__.values())

    try:
        assert lighten_hook_dispatch(False) is True
        genkit_s = _generate.dispatch_hooks
        text, annotations = await next_annotations()
        assert not all(isinstance(a, str) for a in annotations)  # what it works around
        assert lighten_hook_dispatch() is True
        recompiled = _generate.dispatch_hooks
        assert recompiled is not genkit_s
        # Genkit's own source, file and lines: tracebacks still point into Genkit.
        assert recompiled.__code__.co_filename == genkit_s.__code__.co_filename
        assert recompiled.__code__.co_firstlineno == genkit_s.__code__.co_firstlineno
        text_after, annotations_after = await next_annotations()
        assert text_after == text
        assert annotations_after
        assert all(isinstance(a, str) for a in annotations_after)
    finally:
        lighten_hook_dispatch()


async def test_streams_and_tools_run_through_the_recompiled_functions() -> None:
    """The other recompiled functions: a streamed generate and a tool loop, same output."""
    ai, _ = _joke_flow()

    @ai.tool(description="The number of letters in a word.")
    async def letters(word: str) -> int:
        return len(word)

    async def run() -> tuple[list[str], str, str]:
        streamed = ai.generate_stream(prompt="Tell a story about Mittens.")
        chunks = [chunk.text async for chunk in streamed.stream]
        final = await streamed.response
        tooled = await ai.generate(prompt="How many letters has Mittens?", tools=[letters])
        return chunks, final.text, tooled.text

    try:
        assert lighten_hook_dispatch(False) is True
        genkit_s = await run()
        assert lighten_hook_dispatch() is True
        assert await run() == genkit_s
        assert genkit_s[0]
        assert "".join(genkit_s[0]) == genkit_s[1]
    finally:
        lighten_hook_dispatch()


async def test_without_a_tracer_provider_genkit_s_span_bookkeeping_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider), (
        "a test installed a global tracer provider in the unit-test process"
    )
    started: list[str] = []
    genkit_s = _tracing.start_attributes

    def counting(metadata: SpanMetadata, **kwargs: Any) -> dict[str, str | bool]:
        started.append(metadata.name)
        return genkit_s(metadata, **kwargs)

    monkeypatch.setattr(_tracing, "start_attributes", counting)
    _, joke = _joke_flow()
    try:
        assert skip_unconsumed_spans(False) is True
        before = await joke.run("Mittens")
        assert {"joke", "generate"} <= set(started)
        started.clear()
        assert skip_unconsumed_spans() is True
        after = await joke.run("Mittens")
        assert started == []
        assert (after.response, after.trace_id) == (before.response, before.trace_id)
    finally:
        skip_unconsumed_spans()


# Run in a process of its own: the global tracer provider can be set once per process.
_SPANS_WITH_A_PROVIDER = """
import asyncio, json, re
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import os
exporter = InMemorySpanExporter()
if os.environ.get("GENKIT_ENV") == "dev":
    import genkit  # installs the provider its Dev UI reads, as `genkit start` runs an app
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), provider
else:
    provider = TracerProvider()
    trace.set_tracer_provider(provider)
provider.add_span_processor(SimpleSpanProcessor(exporter))

from genkit import Genkit
from genkit_endpoints.compat.genkit import skip_unconsumed_spans
from genkit_endpoints.model.config import ProviderConfig
from genkit_endpoints.model.providers import choose_model

choice = choose_model(ProviderConfig())
ai = Genkit(plugins=list(choice.plugins), model=choice.model)

@ai.flow()
async def joke(name: str) -> str:
    return (await ai.generate(prompt=f"Tell a joke about {name}.")).text

KEPT = ("genkit:name", "genkit:path", "genkit:type", "genkit:state", "genkit:input",
        "genkit:output")

def timeless(value):
    return re.sub(r'"latencyMs":[0-9.e-]+', '"latencyMs":0', value)

def shape():
    spans = exporter.get_finished_spans()
    exporter.clear()
    names = {s.context.span_id: s.name for s in spans}
    return [
        [s.name, names.get(s.parent.span_id) if s.parent else None,
         {k: timeless(v) for k, v in s.attributes.items() if k in KEPT}]
        for s in spans
    ]

async def main():
    out = {}
    for on in (False, True):
        skip_unconsumed_spans(on)
        text = await joke("Mittens")
        out[str(on)] = {"text": text, "spans": shape()}
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.parametrize("dev_mode", [False, True], ids=["app-provider", "genkit-dev-mode"])
def test_with_a_tracer_provider_genkit_s_spans_are_unchanged(dev_mode: bool) -> None:
    """An exporter's view, and the Dev UI's (``GENKIT_ENV=dev``, where Genkit installs the
    provider itself): the same spans, parents and attributes with the swap on as off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENKIT_", "OTEL_"))}
    if dev_mode:
        env["GENKIT_ENV"] = "dev"
    proc = subprocess.run(
        [sys.executable, "-c", _SPANS_WITH_A_PROVIDER],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["True"] == out["False"]
    names = [name for name, _, _ in out["True"]["spans"]]
    assert {"joke", "generate"} <= set(names)
    assert all(attrs.get("genkit:path") for _, _, attrs in out["True"]["spans"])


class Verdict(BaseModel):
    verdict: str
    score: int


_PREPARED_CALLS: list[dict[str, Any]] = [
    {"prompt": literal("Tell a joke about Mittens.")},
    {"prompt": literal("Tell a joke about {{name}}.")},  # no template: sent as written
    {"system": literal("Answer as a pirate."), "prompt": literal("Where is the gold?")},
    {"prompt": literal("Judge this poem."), "output_schema": Verdict},
    {"prompt": literal("Judge this other poem."), "output_schema": Verdict},
]


async def test_prepared_options_are_the_ones_ai_generate_builds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Canary: call after call, the folded options plus the call's messages are exactly
    what ``ai.generate`` hands Genkit's engine, and the answers are the same."""
    handed: list[Any] = []
    engine = _aio.generate_action

    async def recording(registry: Any, options: Any, **kwargs: Any) -> Any:
        handed.append(options)
        return await engine(registry, options, **kwargs)

    monkeypatch.setattr(_aio, "generate_action", recording)
    ai, _ = _joke_flow()
    use = [MiddlewareRef(name="sees-every-hook")]
    ai.define_middleware(SeesEveryHook, name="sees-every-hook")
    prepared = PreparedGenerate(ai, use)
    for call in _PREPARED_CALLS:
        assert PreparedGenerate.accepts(call)
        expected = await ai.generate(use=use, **call)
        (genkit_s,) = handed
        handed.clear()
        ours = await prepared.options(**call)
        assert type(ours) is type(genkit_s)
        assert ours.model_dump() == genkit_s.model_dump()
        assert [type(m) for m in ours.messages] == [type(m) for m in genkit_s.messages]
        answer = await prepared.generate(**call)
        assert handed == []  # straight to the engine
        assert answer.model_dump(exclude={"latency_ms"}) == expected.model_dump(
            exclude={"latency_ms"}
        )


async def test_a_callback_generate_streams_what_generate_stream_streams() -> None:
    """Canary: the private ``_generate`` still takes ``on_chunk``, and calling it in the
    caller's task gives the chunks and the answer ``generate_stream`` gives from its own."""
    ai, _ = _joke_flow()

    @ai.tool(description="The number of letters in a word.")
    async def letters(word: str) -> int:
        return len(word)

    for call in (
        {"prompt": "Tell a story about Mittens."},
        {"prompt": literal("Tell a story about Rex."), "system": literal("Be brief.")},
        {"prompt": "How many letters has Mittens?", "tools": [letters]},
    ):
        streamed = ai.generate_stream(**call)  # type: ignore[arg-type]
        genkit_s = [chunk.text async for chunk in streamed.stream]
        genkit_answer = await streamed.response
        caller = asyncio.current_task()
        during: list[object] = []
        ours: list[str] = []

        def seen(chunk: Any, _ours: list[str] = ours, _during: list[object] = during) -> None:
            _ours.append(chunk.text)
            _during.append(asyncio.current_task())

        answer = await generate_with_callback(ai, on_chunk=seen, **call)
        assert genkit_s, call
        assert ours == genkit_s
        assert set(during) == {caller}  # no task of its own
        assert answer.model_dump(exclude={"latency_ms"}) == genkit_answer.model_dump(
            exclude={"latency_ms"}
        )


@pytest.mark.parametrize(
    "call",
    [
        {"prompt": "Tell a joke about {{name}}."},  # a template: Genkit renders it
        {"prompt": literal("hi"), "tools": ["letters"]},
        {"prompt": literal("hi"), "model": "offline/default"},
        {"prompt": literal("hi"), "config": {"temperature": 0}},
        {"prompt": literal("hi"), "system": "You are {{role}}."},
        {"prompt": literal("hi"), "output_schema": {"type": "object"}},
        {"messages": []},
    ],
)
def test_any_other_call_goes_through_ai_generate(call: dict[str, Any]) -> None:
    assert not PreparedGenerate.accepts(call)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("level", ["debug", "info", "warning"])
@pytest.mark.parametrize("export", [False, True])
def test_the_lighter_debug_check_answers_as_genkit_s(
    level: str, export: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Canary: Genkit's own loggers, our logging at each level, the Dev UI's log export
    off and on: the same answer, and the one Genkit's generate looks up."""
    configure_logging(level, "json", secrets=[], trace_ids=False)
    monkeypatch.setattr(_log_exporter, "log_export_is_enabled", lambda: export)
    genkit_loggers = [_generate.logger, _logger.get_logger("genkit.canary")]
    try:
        assert lighten_debug_checks(False) is True
        genkit_s = [_generate.is_debug_enabled(lg) for lg in genkit_loggers]
        assert lighten_debug_checks() is True
        assert _generate.is_debug_enabled is not _logger.is_debug_enabled
        assert [_generate.is_debug_enabled(lg) for lg in genkit_loggers] == genkit_s
        # A fresh logger takes this configuration (the module's may have cached an
        # earlier one on first use, as structlog does; the two answers still agree).
        assert genkit_s[1] is (export or level == "debug")
    finally:
        lighten_debug_checks()
