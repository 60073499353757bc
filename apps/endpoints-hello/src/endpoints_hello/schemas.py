# SPDX-License-Identifier: Apache-2.0
"""Input and output schemas of the sample flows: defaults, limits, JSON keys.

Every input field is optional with a default, so ``{}`` is a valid request everywhere.
Limits are enforced here, never by silently truncating (the reference sample cut
translate input at 2 000 characters).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LANGUAGE_PATTERN = r"^[a-zA-Z#+]+$"

DEFAULT_TRANSLATE_TEXT = (
    "The Northern Lights, or aurora borealis, appear when charged particles from the "
    "Sun collide with gases high in Earth's atmosphere. Oxygen glows green and red, "
    "while nitrogen adds blue and purple hues. The lights are best seen on long, dark "
    "winter nights far from city glare, in places such as northern Norway, Finland, "
    "Iceland, Canada and Alaska. Displays can last minutes or hours, rippling like "
    "curtains across the sky, and they grow stronger when solar activity peaks every "
    "eleven years or so."
)
DEFAULT_IMAGE_URL = (
    "https://upload.wikimedia.org/wikipedia/commons/4/47/PNG_transparency_demonstration_1.png"
)


class _Input(BaseModel):
    # Unknown keys are ignored (forward compatible clients); types are not coerced from
    # strings to numbers, so a wrong type is a 422, not a surprise.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class JokeInput(_Input):
    name: str = Field(default="Mittens", max_length=200, description="Who the joke is about.")
    username: str | None = Field(
        default=None,
        max_length=200,
        description="Who asks; echoed back. Ignored when the caller is authenticated: the "
        "API key's name (or client certificate subject) is used instead.",
    )


class JokeResponse(BaseModel):
    joke: str
    username: str | None = Field(
        default=None,
        description="The authenticated caller's name, else the request's username (or none).",
    )


class TranslateInput(_Input):
    text: str = Field(default=DEFAULT_TRANSLATE_TEXT, min_length=1, max_length=10_000)
    target_language: str = Field(default="French", min_length=1, max_length=100)


class TranslationResult(BaseModel):
    original_text: str
    translated_text: str
    target_language: str
    confidence: Literal["high", "medium", "low"]


class ImageInput(_Input):
    image_url: str = Field(
        default=DEFAULT_IMAGE_URL,
        max_length=2048,
        pattern=r"^[hH][tT][tT][pP][sS]?://[^\s]+$",
        description="An http(s) URL of the image to describe.",
    )


class ImageDescription(BaseModel):
    description: str
    image_url: str


class CharacterInput(_Input):
    name: str = Field(default="Luna", min_length=1, max_length=200)


class Skills(BaseModel):
    strength: int = Field(ge=0, le=100)
    charisma: int = Field(ge=0, le=100)
    endurance: int = Field(ge=0, le=100)


class RpgCharacter(BaseModel):
    # backStory is camelCase on the wire; both spellings are accepted.
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    name: str = Field(min_length=1, max_length=200)
    back_story: str = Field(alias="backStory", min_length=1, max_length=5_000)
    abilities: list[str] = Field(max_length=10)
    skills: Skills


class ChatInput(_Input):
    question: str = Field(
        default="What is the best programming language?", min_length=1, max_length=5_000
    )


class ChatResponse(BaseModel):
    answer: str
    persona: Literal["pirate captain"] = "pirate captain"


class StoryInput(_Input):
    topic: str = Field(default="a brave cat", min_length=1, max_length=1_000)


class CodeInput(_Input):
    description: str = Field(
        default="a Python function that checks if a number is prime",
        min_length=1,
        max_length=10_000,
    )
    language: str = Field(default="python", max_length=50, pattern=LANGUAGE_PATTERN)


class CodeOutput(BaseModel):
    code: str = Field(min_length=1)
    language: str = Field(min_length=1, max_length=50)
    explanation: str
    filename: str = Field(min_length=1, max_length=255)


class CodeReviewInput(_Input):
    code: str = Field(default="def add(a, b):\n    return a + b", min_length=1, max_length=50_000)
    language: str | None = Field(default=None, max_length=50, pattern=LANGUAGE_PATTERN)


class ReviewIssue(BaseModel):
    severity: Literal["info", "warning", "error", "critical"]
    line: int | None = Field(default=None, ge=1)
    message: str
    suggestion: str | None = None


class CodeReview(BaseModel):
    summary: str
    issues: list[ReviewIssue] = Field(max_length=50)
    score: int = Field(ge=1, le=10)
    language: str = Field(min_length=1, max_length=50)
