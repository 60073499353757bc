# SPDX-License-Identifier: Apache-2.0
"""The sample flows and their route table entries.

``build_routes`` defines every flow on the given Genkit instance and returns the one
route table that REST (and later gRPC) is generated from. Adding a flow means: a schema
in ``schemas.py``, a flow function here, one ``FlowRoute`` line below.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from genkit import ActionRunContext, Genkit, Part
from pydantic import BaseModel, Field

from endpoints_hello.schemas import (
    CharacterInput,
    ChatInput,
    ChatResponse,
    CodeInput,
    CodeOutput,
    CodeReview,
    CodeReviewInput,
    ImageDescription,
    ImageInput,
    JokeInput,
    JokeResponse,
    RpgCharacter,
    StoryInput,
    TranslateInput,
    TranslationResult,
)
from genkit_endpoints import (
    FlowRoute,
    ImageFetcher,
    ModelClient,
    RouteTable,
    current_principal,
    json_field,
    literal,
)

PIRATE_SYSTEM_PROMPT = (
    "You are Captain Redbeard, an 18th-century pirate captain. Answer every question "
    "helpfully and accurately, but in the voice of a salty old sea dog: nautical "
    "metaphors, 'arr' and 'matey' welcome, no modern slang."
)

# Control characters other than tab and newlines carry no meaning in text to translate
# and can confuse a model; they are removed. Nothing is ever truncated.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class TimeQuery(BaseModel):
    timezone: str = Field(default="UTC", description="An IANA time zone name, e.g. Europe/Paris.")


def sanitize_text(text: str) -> str:
    """Drop control characters and normalise line endings; never shortens the content."""
    return _CONTROL.sub("", text.replace("\r\n", "\n")).strip()


def build_routes(ai: Genkit, llm: ModelClient, images: ImageFetcher | None = None) -> RouteTable:
    """Define the flows on ``ai`` and return their route table.

    ``images`` downloads describe-image's URLs; the default one has the kit's default
    limits and no allowed private networks.
    """
    fetcher = images or ImageFetcher()
    # The Dotprompt file names its output schema; it must be registered by that name.
    ai.define_schema("CodeReview", CodeReview)

    @ai.tool(description="The current date and time, in ISO 8601, for a time zone.")
    async def get_current_time(query: TimeQuery) -> str:
        try:
            zone = ZoneInfo(query.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")
        return datetime.now(UTC).astimezone(zone).isoformat(timespec="seconds")

    @ai.flow(description="Tell a short joke about a name.")
    async def tell_joke(data: JokeInput) -> JokeResponse:
        response = await llm.generate(
            prompt=literal(f"Tell a short, family-friendly joke about {data.name}.")
        )
        # An authenticated caller cannot claim another name: the principal wins over the
        # body field. Either way the name is only echoed, never put into the prompt.
        principal = current_principal()
        username = principal.name if principal is not None else data.username
        return JokeResponse(joke=response.text, username=username)

    @ai.flow(description="Tell a short joke, streamed as it is generated.", chunk_type=str)
    async def tell_joke_stream(data: JokeInput, ctx: ActionRunContext) -> str:
        response = await llm.stream(
            ctx.send_chunk, prompt=literal(f"Tell a short, family-friendly joke about {data.name}.")
        )
        return response.text

    @ai.flow(description="Write a short story, streamed paragraph by paragraph.", chunk_type=str)
    async def tell_story(data: StoryInput, ctx: ActionRunContext) -> str:
        response = await llm.stream(
            ctx.send_chunk,
            prompt=literal(f"Write a short story (three short paragraphs) about {data.topic}."),
        )
        return response.text

    @ai.flow(description="Translate text, with the time of translation from a tool.")
    async def translate_text(data: TranslateInput) -> TranslationResult:
        async def sanitize() -> str:
            return sanitize_text(data.text)

        text = await ai.run(name="sanitize-input", fn=sanitize)
        result = await llm.structured(
            TranslationResult,
            prompt=literal(
                f"Translate the text below into {data.target_language}. Call get_current_time "
                "once to learn when the translation is made. Rate your confidence as high, "
                f"medium or low.\n\nText:\n{text}"
            ),
            tools=[get_current_time],
        )
        # The original and the target language are facts of the request, not model output.
        return result.model_copy(
            update={"original_text": text, "target_language": data.target_language}
        )

    @ai.flow(description="Describe an image given by URL.")
    async def describe_image(data: ImageInput) -> ImageDescription:
        # Fetched here and passed inline: a provider plugin handed the URL would download
        # whatever it names, internal addresses included.
        image = await fetcher.fetch(data.image_url)
        response = await llm.generate(
            prompt=[
                Part.from_text("Describe this image in two or three sentences."),
                Part.from_media(url=image.data_url(), content_type=image.content_type),
            ]
        )
        return ImageDescription(description=response.text, image_url=data.image_url)

    @ai.flow(description="Create an RPG character with a back story, abilities and skills.")
    async def generate_character(data: CharacterInput) -> RpgCharacter:
        return await llm.structured(
            RpgCharacter,
            prompt=literal(
                f"Create a fantasy RPG character named {data.name}: a back story of a few "
                "sentences, up to five abilities, and strength, charisma and endurance "
                "skills from 0 to 100."
            ),
        )

    @ai.flow(description="Answer a question as an 18th-century pirate captain.")
    async def pirate_chat(data: ChatInput) -> ChatResponse:
        response = await llm.generate(
            system=literal(PIRATE_SYSTEM_PROMPT), prompt=literal(data.question)
        )
        return ChatResponse(answer=response.text)

    @ai.flow(description="Generate code from a description.")
    async def generate_code(data: CodeInput) -> CodeOutput:
        return await llm.structured(
            CodeOutput,
            prompt=literal(
                f"Write {data.language} code for: {data.description}\n"
                "Return the code, its language, a short explanation and a file name."
            ),
        )

    @ai.flow(description="Review code with the code_review Dotprompt.")
    async def review_code(data: CodeReviewInput) -> CodeReview:
        variables = {"code": data.code}
        if data.language:
            variables["language"] = data.language
        return await llm.prompt("code_review", variables, CodeReview)

    # Cache versions: the table computes one per cacheable flow from its own source, the
    # prompt files it names, the default model and the model-call policy.
    model = ai.registry.lookup_value("defaultModel", "defaultModel")
    return RouteTable.build(
        [
            FlowRoute(tell_joke, "/tell-joke", JokeInput, JokeResponse, grpc_method="TellJoke"),
            FlowRoute(tell_joke_stream, "/tell-joke/stream", JokeInput, stream_key="joke",
                      grpc_method="TellJokeStream"),
            FlowRoute(tell_story, "/tell-story/stream", StoryInput, stream_key="story",
                      grpc_method="TellStory"),
            FlowRoute(translate_text, "/translate", TranslateInput, TranslationResult,
                      cacheable=True, grpc_method="TranslateText"),
            FlowRoute(describe_image, "/describe-image", ImageInput, ImageDescription,
                      cacheable=True, grpc_method="DescribeImage"),
            FlowRoute(generate_character, "/generate-character", CharacterInput, RpgCharacter,
                      cacheable=True, grpc_method="GenerateCharacter"),
            FlowRoute(pirate_chat, "/chat", ChatInput, ChatResponse, grpc_method="PirateChat"),
            FlowRoute(generate_code, "/generate-code", CodeInput, CodeOutput, cacheable=True,
                      grpc_method="GenerateCode"),
            FlowRoute(review_code, "/review-code", CodeReviewInput, CodeReview, cacheable=True,
                      grpc_method="ReviewCode", grpc_encode=json_field("review"),
                      prompts=("code_review",)),
        ],
        model=str(model),
        model_config=llm.policy,
        prompt_dir=Path(__file__).resolve().parent / "prompts",  # Genkit's prompt_dir (app.py)
    )  # fmt: skip
