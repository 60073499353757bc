# SPDX-License-Identifier: Apache-2.0
"""Every sample flow on the offline model: schema-valid output for many varied inputs.

Inputs are drawn by hypothesis within each input model's constraints; outputs must
validate against the route's output model: the offline model honours every schema the
flows request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from genkit import Genkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from endpoints_hello import schemas
from endpoints_hello.app import PROMPTS_DIR
from endpoints_hello.flows import build_routes
from genkit_endpoints.core import routes
from genkit_endpoints.core.routes import RouteTable
from genkit_endpoints.model.client import ModelClient
from genkit_endpoints.model.config import ModelCallPolicyConfig
from genkit_endpoints.model.offline import OFFLINE_MODEL, OfflineModel
from tests.support.image_server import offline_fetcher

text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1)
language = st.from_regex(schemas.LANGUAGE_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 50)
url = st.builds(
    lambda host, path: f"https://{host}.example/{path}.png",
    st.from_regex(r"[a-z]{1,20}", fullmatch=True),
    st.from_regex(r"[a-z0-9_-]{1,40}", fullmatch=True),
)

INPUTS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "tell_joke": st.fixed_dictionaries(
        {}, optional={"name": text.filter(lambda s: len(s) <= 200), "username": st.none() | text}
    ).filter(lambda d: len(d.get("username") or "") <= 200),
    "tell_joke_stream": st.fixed_dictionaries({}, optional={"name": st.text(max_size=200)}),
    "tell_story": st.fixed_dictionaries({}, optional={"topic": st.text(min_size=1, max_size=300)}),
    "translate_text": st.fixed_dictionaries(
        {},
        optional={
            "text": st.text(min_size=1, max_size=2000),
            "target_language": st.text(min_size=1, max_size=100),
        },
    ),
    "describe_image": st.fixed_dictionaries({}, optional={"image_url": url}),
    "generate_character": st.fixed_dictionaries(
        {}, optional={"name": st.text(min_size=1, max_size=200)}
    ),
    "pirate_chat": st.fixed_dictionaries(
        {}, optional={"question": st.text(min_size=1, max_size=500)}
    ),
    "generate_code": st.fixed_dictionaries(
        {}, optional={"description": st.text(min_size=1, max_size=500), "language": language}
    ),
    "review_code": st.fixed_dictionaries(
        {}, optional={"code": st.text(min_size=1, max_size=2000), "language": st.none() | language}
    ),
}


@pytest.fixture(scope="module")
def harness() -> Iterator[tuple[asyncio.AbstractEventLoop, RouteTable]]:
    loop = asyncio.new_event_loop()
    ai = Genkit(plugins=[OfflineModel()], model=OFFLINE_MODEL, prompt_dir=PROMPTS_DIR)
    table = build_routes(ai, ModelClient(ai, ModelCallPolicyConfig()), offline_fetcher())
    yield loop, table
    loop.close()


def test_every_flow_has_an_input_strategy(
    harness: tuple[asyncio.AbstractEventLoop, RouteTable],
) -> None:
    assert set(INPUTS) == set(harness[1].by_name)


async def _run(route: routes.FlowRoute, raw: dict[str, Any]) -> tuple[Any, list[Any]]:
    payload = routes.parse_input(route, raw)
    if not route.streaming:
        return await routes.invoke(route, payload), []
    chunks, final = [], None
    async for event in routes.stream(route, payload):
        if isinstance(event, routes.Chunk):
            chunks.append(event.value)
        else:
            final = event.output
    return final, chunks


@pytest.mark.parametrize("flow", sorted(INPUTS))
def test_offline_output_validates_for_varied_inputs(
    harness: tuple[asyncio.AbstractEventLoop, RouteTable], flow: str
) -> None:
    loop, table = harness
    route = table.by_name[flow]

    @settings(
        max_examples=50,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
    )
    @given(raw=INPUTS[flow])
    def check(raw: dict[str, Any]) -> None:
        output, chunks = loop.run_until_complete(_run(route, raw))
        if route.output_model is not None:
            parsed = route.output_model.model_validate(output)
            assert parsed.model_dump(mode="json", by_alias=True) == output
        else:
            assert isinstance(output, str)
            assert output
            assert "".join(chunks) == output

    check()


def test_offline_output_is_deterministic(
    harness: tuple[asyncio.AbstractEventLoop, RouteTable],
) -> None:
    loop, table = harness
    route = table.by_name["generate_character"]
    a = loop.run_until_complete(_run(route, {"name": "Kai"}))
    b = loop.run_until_complete(_run(route, {"name": "Kai"}))
    assert a == b
