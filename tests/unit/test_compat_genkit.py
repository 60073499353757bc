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

import json
from collections.abc import MutableMapping
from typing import Any, ClassVar

import pytest
from genkit import Genkit, MiddlewareRef
from genkit._ai import _generate
from genkit._core._tracing import SpanMetadata, record_span_outcome, start_attributes
from genkit.middleware import BaseMiddleware
from genkit.plugin_api import Action, ActionKind, ActionMetadata, Plugin
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util.types import Attributes

from genkit_endpoints import compat
from genkit_endpoints.compat import UnsupportedDependency
from genkit_endpoints.compat.genkit import (
    flow_function,
    lighten_hook_dispatch,
    require_genkit,
    set_span_content,
)
from genkit_endpoints.core.health import Readiness
from genkit_endpoints.model.config import ProviderConfig
from genkit_endpoints.model.providers import WarmUp, choose_model, warm_up


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
