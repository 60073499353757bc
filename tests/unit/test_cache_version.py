# SPDX-License-Identifier: Apache-2.0
"""Per-flow cache versions, computed when the route table is built.

An app module of two flows is written to a temporary folder and imported from its file,
as a deploy would load an edited ``flows.py``. Each edit builds a fresh table; one
in-memory ``FlowCache`` outlives the rebuilds, as a shared cache outlives a redeploy, and
requests go through the run context the transports use.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from genkit import Genkit
from pydantic import BaseModel

from endpoints_hello.app import PROMPTS_DIR
from endpoints_hello.flows import build_routes
from genkit_endpoints.core.routes import FlowRoute, RouteTable, RunContext
from genkit_endpoints.model.client import ModelClient
from genkit_endpoints.model.config import ModelCallPolicyConfig
from genkit_endpoints.model.offline import OFFLINE_MODEL, OfflineModel
from genkit_endpoints.policies.cache import CacheConfig, FlowCache

# The app's module. "echo" answers from its prompt file and counts its runs; "shout" is
# the other flow, whose edits must not touch echo's entries.
APP = """
from genkit import Genkit
from pydantic import BaseModel


class In(BaseModel):
    word: str = "x"


class Out(BaseModel):
    text: str
    runs: int


RUNS: list[str] = []


def define(ai: Genkit, prompt: str):
    @ai.flow()
    async def echo(data: In) -> Out:
        # echo answers with its prompt and the word
        RUNS.append(data.word)
        return Out(text=f"{prompt} {data.word}", runs=len(RUNS))

    @ai.flow()
    async def shout(data: In) -> Out:
        # SHOUT COMMENT
        return Out(text=data.word.upper(), runs=0)

    return echo, shout
"""

_count = itertools.count()


@dataclasses.dataclass
class Build:
    table: RouteTable
    module: ModuleType

    def version(self, flow: str) -> str:
        return self.table.by_name[flow].version

    @property
    def runs(self) -> list[str]:
        runs: list[str] = self.module.RUNS
        return runs


class App:
    """The app's files in a temporary folder, rebuilt after every edit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.source = APP
        self.prompts = root / "prompts"
        self.prompts.mkdir()
        (self.prompts / "echo.prompt").write_text("Say it back:\n{{word}}\n", "utf-8")
        self.loaded: list[str] = []

    def build(
        self,
        *,
        model: str | None = "offline/a",
        config: BaseModel | str = "",
        prompts: tuple[str, ...] = ("echo",),
        version: str = "",
    ) -> Build:
        # A new file per build: each import reads the text as it is now.
        name = f"cache_version_app_{next(_count)}"
        path = self.root / f"{name}.py"
        path.write_text(self.source, "utf-8")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        self.loaded.append(name)
        spec.loader.exec_module(module)
        prompt = (self.prompts / "echo.prompt").read_text("utf-8")
        echo, shout = module.define(Genkit(), prompt)
        model_in, model_out = module.In, module.Out
        table = RouteTable.build(
            [
                FlowRoute(
                    echo,
                    "/echo",
                    model_in,
                    model_out,
                    cacheable=True,
                    prompts=prompts,
                    version=version,
                ),
                FlowRoute(shout, "/shout", model_in, model_out, cacheable=True),
            ],
            model=model,
            model_config=config,
            prompt_dir=self.prompts,
        )
        return Build(table, module)

    def edit(self, old: str, new: str) -> None:
        assert old in self.source
        self.source = self.source.replace(old, new)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    made = App(tmp_path)
    yield made
    for name in made.loaded:
        sys.modules.pop(name, None)


async def ask(build: Build, run: RunContext, word: str = "hi") -> Any:
    route = build.table.by_path["/echo"]
    return await run.invoke(route, route.input_model(word=word))


async def test_a_comment_in_another_flow_keeps_the_version_and_the_cached_answer(
    app: App,
) -> None:
    run = RunContext(cache=FlowCache(CacheConfig()))
    before = app.build()
    first = await ask(before, run)
    assert before.runs == ["hi"]

    app.edit("# SHOUT COMMENT", "# the other flow's comment, reworded")
    after = app.build()
    assert after.version("shout") != before.version("shout")
    assert after.version("echo") == before.version("echo")
    assert await ask(after, run) == first
    assert after.runs == []  # answered from the cache, the flow did not run


async def test_editing_the_flows_prompt_file_misses_the_old_entries(app: App) -> None:
    run = RunContext(cache=FlowCache(CacheConfig()))
    before = app.build()
    await ask(before, run)

    (app.prompts / "echo.prompt").write_text("Repeat, politely:\n{{word}}\n", "utf-8")
    after = app.build()
    assert after.version("echo") != before.version("echo")
    assert after.version("shout") == before.version("shout")  # it names no prompt
    answer = await ask(after, run)
    assert after.runs == ["hi"]  # a miss: the flow ran with the new prompt
    assert answer["text"] == "Repeat, politely:\n{{word}}\n hi"


async def test_editing_the_flows_own_code_changes_its_version(app: App) -> None:
    before = app.build()
    app.edit("# echo answers with its prompt and the word", "# echo: prompt, then the word")
    after = app.build()
    assert after.version("echo") != before.version("echo")
    assert after.version("shout") == before.version("shout")


def test_the_model_and_its_call_settings_are_part_of_every_version(app: App) -> None:
    base = app.build(model="offline/a", config=ModelCallPolicyConfig())
    same = app.build(model="offline/a", config=ModelCallPolicyConfig())
    other_model = app.build(model="offline/b", config=ModelCallPolicyConfig())
    other_config = app.build(model="offline/a", config=ModelCallPolicyConfig(max_retries=5))
    for flow in ("echo", "shout"):
        assert same.version(flow) == base.version(flow)
        assert other_model.version(flow) != base.version(flow)
        assert other_config.version(flow) != base.version(flow)


def test_an_explicit_version_is_used_as_given(app: App) -> None:
    build = app.build(version="release-7")
    assert build.version("echo") == "release-7"
    assert build.version("shout") != ""


def test_a_cacheable_route_without_a_model_to_version_by_is_refused(app: App) -> None:
    with pytest.raises(ValueError, match=r"route /echo is cacheable .*without the model"):
        app.build(model=None)


def test_a_prompt_file_that_does_not_exist_is_refused(app: App) -> None:
    with pytest.raises(ValueError, match=r"prompt 'missing' has no file .*missing\.prompt"):
        app.build(prompts=("echo", "missing"))


def test_a_flow_whose_source_cannot_be_read_needs_an_explicit_version() -> None:
    class In(BaseModel):
        word: str = "x"

    class Out(BaseModel):
        text: str

    ai = Genkit()
    scope: dict[str, Any] = {"In": In, "Out": Out}
    exec("async def made(data: In) -> Out:\n    return Out(text=data.word)\n", scope)  # noqa: S102 - a flow without a source file
    flow = ai.flow(name="made")(scope["made"])

    with pytest.raises(ValueError, match=r"route /made .*source cannot be read.*version="):
        RouteTable.build([FlowRoute(flow, "/made", In, Out, cacheable=True)], model="offline/a")
    table = RouteTable.build(
        [FlowRoute(flow, "/made", In, Out, cacheable=True, version="v1")], model="offline/a"
    )
    assert table.by_name["made"].version == "v1"
    # Not cacheable: nothing to version, nothing refused.
    assert RouteTable.build([FlowRoute(flow, "/made", In, Out)]).by_name["made"].version == ""


def test_the_table_cannot_be_changed_once_built(app: App) -> None:
    table = app.build().table
    route = table.by_path["/echo"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        table.routes = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        table.cache = FlowCache(CacheConfig())  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        table.by_path["/other"] = route  # type: ignore[index]
    with pytest.raises(TypeError):
        table.by_name["other"] = route  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        route.version = "changed"  # type: ignore[misc]
    assert [r.path for r in table] == ["/echo", "/shout"]


def test_a_table_assembled_by_hand_must_agree_with_its_lookups(app: App) -> None:
    built = app.build().table
    with pytest.raises(ValueError, match="by_path"):
        RouteTable(built.routes, {}, built.by_name)
    unversioned = dataclasses.replace(built.routes[0], version="")
    with pytest.raises(ValueError, match="cacheable without a version"):
        RouteTable((unversioned,), {unversioned.path: unversioned}, {unversioned.name: unversioned})


def test_the_samples_cacheable_flows_each_have_their_own_version() -> None:
    ai = Genkit(plugins=[OfflineModel()], model=OFFLINE_MODEL, prompt_dir=PROMPTS_DIR)
    table = build_routes(ai, ModelClient(ai, ModelCallPolicyConfig()))
    versions = {r.name: r.version for r in table if r.cacheable}
    assert len(versions) == 5
    assert all(versions.values())
    assert len(set(versions.values())) == len(versions)
