# SPDX-License-Identifier: Apache-2.0
"""The offline model behaves like a real Genkit model: text, JSON, tools, media, streaming."""

from __future__ import annotations

import asyncio
import math
from typing import Literal

import pytest
import structlog
from genkit import Genkit, GenkitError, Part
from genkit.plugin_api import ActionKind
from pydantic import BaseModel, ConfigDict, Field

from genkit_endpoints.model.offline import OFFLINE_MODEL, OfflineModel, OfflineModelConfig
from tests.support.virtual_time import run_virtual

PNG = (  # a 1x1 transparent PNG
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA"
    "60e6kgAAAABJRU5ErkJggg=="
)


SLOW = OfflineModelConfig(first_chunk_delay_ms=50, chunk_delay_ms=50, words_per_chunk=6)


class Character(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str
    back_story: str = Field(alias="backStory")
    level: int = Field(ge=1, le=20)
    skills: list[str] = Field(max_length=3)
    languages: list[str] = Field(default_factory=list)
    code: str = Field(pattern=r"^[a-zA-Z#+]+$", min_length=2, max_length=10)
    mood: Literal["happy", "grumpy"]
    nickname: str | None = None


class Translation(BaseModel):
    original_text: str
    translated_text: str
    language: str


class Forecast(BaseModel):
    city: str
    summary: str


class WeatherQuery(BaseModel):
    city: str
    days: int = Field(ge=1, le=7)


def make_ai(config: OfflineModelConfig | None = None) -> tuple[Genkit, OfflineModel]:
    plugin = OfflineModel(config)
    return Genkit(plugins=[plugin], model=OFFLINE_MODEL), plugin


async def test_text_answer_mentions_the_subject_of_the_prompt() -> None:
    ai, plugin = make_ai()
    r = await ai.generate(prompt="Tell me a joke about Mittens")
    assert "Mittens" in r.text
    assert r.finish_reason == "stop"
    assert plugin.completed_calls == 1


async def test_pirate_system_prompt_colours_the_answer() -> None:
    ai, _ = make_ai()
    r = await ai.generate(prompt="Tell me a joke about Mittens", system="You are a pirate.")
    assert r.text.startswith("Arr")
    assert "Mittens" in r.text


@pytest.mark.parametrize("prompt", ["Create a character named Mittens", "Invent a hero", ""])
async def test_output_schema_yields_a_valid_parsed_output(prompt: str) -> None:
    ai, _ = make_ai()
    r = await ai.generate(prompt=prompt or "?", output_schema=Character)
    assert r.error is None
    assert isinstance(r.output, Character)
    Character.model_validate_json(r.text)


async def test_json_output_echoes_quoted_input_and_subject() -> None:
    ai, _ = make_ai()
    r = await ai.generate(prompt='Translate "good morning" to French', output_schema=Translation)
    assert isinstance(r.output, Translation)
    assert r.output.original_text == "good morning"
    named = await ai.generate(prompt="Create a character named Mittens", output_schema=Character)
    assert named.output.name == "Mittens"


async def test_json_format_without_schema_returns_an_object() -> None:
    ai, _ = make_ai()
    r = await ai.generate(prompt="Tell me about tea", output_format="json")
    assert isinstance(r.output, dict)
    assert "tea" in r.output["answer"]


async def test_streaming_sends_word_chunks_that_concatenate_to_the_text() -> None:
    ai, _ = make_ai(OfflineModelConfig(words_per_chunk=2))
    sr = ai.generate_stream(prompt="Tell me a joke about Mittens")
    chunks = [chunk.text async for chunk in sr.stream]
    final = await sr.response
    assert len(chunks) >= 3
    assert all(len(c.split()) <= 2 for c in chunks)
    assert "".join(chunks) == final.text


async def test_streaming_json_chunks_concatenate_to_valid_output() -> None:
    ai, _ = make_ai()
    sr = ai.generate_stream(prompt="Create a character named Mittens", output_schema=Character)
    chunks = [chunk.text async for chunk in sr.stream]
    final = await sr.response
    assert len(chunks) > 1
    assert "".join(chunks) == final.text
    assert isinstance(final.output, Character)


async def test_tool_is_called_once_and_its_output_reaches_the_answer() -> None:
    ai, plugin = make_ai()
    calls: list[str] = []

    @ai.tool()
    async def weather(city: str) -> str:
        """Current weather for a city."""
        calls.append(city)
        return f"sunny and 21C in {city}"

    r = await ai.generate(prompt="What's the weather in Paris?", tools=[weather])
    assert calls == ["Paris"]
    assert "sunny and 21C in Paris" in r.text
    assert r.finish_reason == "stop"
    assert plugin.completed_calls == 2  # the tool request turn and the final answer


async def test_tool_with_object_input_feeds_structured_output() -> None:
    ai, _ = make_ai()
    calls: list[WeatherQuery] = []

    @ai.tool()
    async def forecast(query: WeatherQuery) -> dict[str, str]:
        """Forecast for a city."""
        calls.append(query)
        return {"summary": f"rain for {query.days} days"}

    r = await ai.generate(prompt="Forecast for Oslo", tools=[forecast], output_schema=Forecast)
    assert len(calls) == 1
    assert 1 <= calls[0].days <= 7
    assert isinstance(r.output, Forecast)
    assert r.output.summary == f"rain for {calls[0].days} days"


async def test_media_part_is_accepted_and_acknowledged() -> None:
    ai, _ = make_ai()
    r = await ai.generate(
        prompt=[
            Part.from_text("Describe this picture"),
            Part.from_media(url=PNG, content_type="image/png"),
        ]
    )
    assert r.finish_reason == "stop"
    assert "image (image/png)" in r.text
    assert r.usage is not None
    assert r.usage.input_images == 1


async def test_media_content_type_is_read_from_a_data_url() -> None:
    ai, _ = make_ai()
    r = await ai.generate(prompt=[Part.from_text("What is this?"), Part.from_media(url=PNG)])
    assert "image (image/png)" in r.text


async def test_identical_requests_get_identical_answers() -> None:
    ai, _ = make_ai()
    first = await ai.generate(prompt="Create a character named Mittens", output_schema=Character)
    second = await ai.generate(prompt="Create a character named Mittens", output_schema=Character)
    other = await ai.generate(prompt="Create a character named Tom", output_schema=Character)
    assert first.text == second.text
    assert first.text != other.text
    other_app, _ = make_ai()
    again = await other_app.generate(
        prompt="Create a character named Mittens", output_schema=Character
    )
    assert again.text == first.text


async def test_usage_counts_words_and_characters() -> None:
    ai, _ = make_ai()
    r = await ai.generate(prompt="Tell me a joke about Mittens")
    assert r.usage is not None
    assert r.usage.input_tokens == 6
    assert r.usage.input_characters == len("Tell me a joke about Mittens")
    assert r.usage.output_tokens == len(r.text.split())
    assert r.usage.output_characters == len(r.text)


def test_unary_call_waits_the_simulated_streaming_latency() -> None:
    """On a virtual clock: the wait is exactly what streaming the answer would take."""
    ai, _ = make_ai(SLOW)
    r, took = run_virtual(ai.generate(prompt="Tell me a joke about Mittens"))
    n_chunks = math.ceil(len(r.text.split()) / 6)
    assert n_chunks >= 3
    assert took == pytest.approx(0.05 + 0.05 * (n_chunks - 1))


def test_streaming_honours_first_chunk_and_chunk_delays() -> None:
    ai, _ = make_ai(SLOW)

    async def arrivals() -> list[float]:
        loop = asyncio.get_running_loop()
        sr = ai.generate_stream(prompt="Tell me a joke about Mittens")
        times = [loop.time() async for _ in sr.stream]
        await sr.response
        return times

    times, _ = run_virtual(arrivals())  # a virtual clock: exact times, no waiting
    assert len(times) >= 3
    assert times == pytest.approx([0.05 * (i + 1) for i in range(len(times))])


async def test_cancelling_a_slow_stream_counts_and_logs_the_cancellation() -> None:
    ai, plugin = make_ai(OfflineModelConfig(chunk_delay_ms=10_000, words_per_chunk=1))
    sr = ai.generate_stream(prompt="Tell me a joke about Mittens")
    with structlog.testing.capture_logs() as logs:
        async for _ in sr.stream:
            break  # one chunk arrived; the model now sleeps before the next one
        response = asyncio.ensure_future(sr.response)
        response.cancel()
        with pytest.raises(asyncio.CancelledError):
            await response
    assert plugin.cancelled_calls == 1
    assert plugin.completed_calls == 0
    events = [e for e in logs if e["event"] == "offline_model_cancelled"]
    assert events == [{"event": "offline_model_cancelled", "chunks_sent": 1, "log_level": "info"}]


@pytest.mark.parametrize(
    "kwargs",
    [{"first_chunk_delay_ms": -1}, {"chunk_delay_ms": float("nan")}, {"words_per_chunk": 0}],
)
def test_invalid_config_is_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        OfflineModelConfig(**kwargs)  # type: ignore[arg-type]


async def test_plugin_advertises_and_resolves_only_its_model() -> None:
    plugin = OfflineModel()
    [meta] = await plugin.list_actions()
    assert meta.name == OFFLINE_MODEL
    assert meta.action_type == ActionKind.MODEL
    assert await plugin.resolve(ActionKind.MODEL, OFFLINE_MODEL) is not None
    assert await plugin.resolve(ActionKind.MODEL, "offline/other") is None
    assert await plugin.resolve(ActionKind.EMBEDDER, OFFLINE_MODEL) is None
    ai = Genkit(plugins=[plugin])
    with pytest.raises(GenkitError):
        await ai.generate(model="offline/other", prompt="hi")
