# SPDX-License-Identifier: Apache-2.0
"""The offline model: a Genkit model plugin that answers without any provider or network.

`OfflineModel` serves one model, ``offline/default``, for development, tests and
benchmarks. Its answer depends only on the request (seeded by a hash of it): short English
text about the subject of the last user message, lightly coloured by the system prompt
and acknowledging media parts; JSON that validates against the requested schema (built by
`schema_sample.sample`, with hints taken from the prompt); one tool request per tool-using
turn, then a final answer that uses the tool's output. It streams in word chunks with
configurable latency and counts completed and cancelled calls on the plugin instance.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
from typing import Any

import structlog
from genkit import ActionRunContext
from genkit.model import (
    Constrained,
    FinishReason,
    Message,
    ModelInfo,
    ModelRequest,
    ModelResponse,
    ModelResponseChunk,
    ModelUsage,
    Part,
    Supports,
)
from genkit.plugin_api import (
    Action,
    ActionKind,
    ActionMetadata,
    Plugin,
    model,
    model_action_metadata,
)

from genkit_endpoints.model.config import OFFLINE_MODEL, OfflineModelConfig
from genkit_endpoints.model.schema_sample import ROOT_HINT, sample

__all__ = ["OFFLINE_MODEL", "OfflineModel", "OfflineModelConfig"]

_log = structlog.get_logger(__name__)

_CUE = re.compile(r"\b(?:about|regarding|named|called|describing|on)\s+(.+)", re.I)
_CUE_END = re.compile(r"[.?!,;:\n\"]|\b(?:please|that|which|who|so|and|with)\b", re.I)
_ARTICLE = re.compile(r"^(?:the|a|an|my|our|your|this)\s+", re.I)
_PROPER = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*")
_WORD = re.compile(r"[A-Za-z][\w'-]+")
_QUOTED = re.compile(r"[\"“]([^\"”]+)[\"”]")
_FIELD = re.compile(r"\b([A-Za-z_]\w{0,40})\s*[:=]\s*\"?([^\"\n,;]+)")
_STOP_WORDS = (  # never a subject: function words and the verbs that start instructions
    "the an my our your this that these those me you it is are was be do does what when where"
    " which who why how please tell give write create make explain describe summarize review"
    " invent generate list show translate draft suggest find plan"
)
_STOP = frozenset(_STOP_WORDS.split())
_JOKES: tuple[str, ...] = (
    "Why did {s} bring a ladder? Because {s} heard the stakes were high.",
    "{S} asked for a book on patience. The librarian said it would take a while.",
    "What did {s} say to the calendar? Your days are numbered.",
)
_POEMS: tuple[str, ...] = ("{S} in morning light,\nquiet as a folded page,\nthe day leans closer.",)
_ANSWERS: tuple[str, ...] = (
    "Here is a short answer about {s}: it is simpler than it looks; a few plain steps cover it.",
    "A quick note on {s}: start with the basics, then look at one clear example.",
)
_MEDIA_KINDS = {"image", "audio", "video"}
_SCENES = ("a calm scene in soft colours", "a few clear shapes on a plain background")
_STYLES = (  # system-prompt keyword → prefix; a light touch, the answer itself is unchanged
    ("pirate", "Arr, matey! "),
    ("shakespeare", "Hark! "),
    ("cowboy", "Howdy, partner! "),
    ("formal", "Certainly. "),
    ("cheerful", "Happy to help! "),
)
# Property names (or their last words, see `sample`) that get the answer, the echoed
# input or the subject when a schema asks for them.
_ANSWER_KEYS = "answer response result text content summary description joke story message reply"
_ECHO_KEYS = "input prompt query question original_text source_text"
_SUBJECT_KEYS = "subject topic name title city location keyword"
_ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}}
_INFO = ModelInfo(
    label="Offline model (deterministic, no provider)",
    supports=Supports(
        multiturn=True,
        tools=True,
        media=True,
        system_role=True,
        output=["text", "json"],
        constrained=Constrained.ALL,
    ),
)


class OfflineModel(Plugin):
    """Genkit plugin serving ``offline/default``; counts calls for in-process tests."""

    name = "offline"

    def __init__(self, config: OfflineModelConfig | None = None) -> None:
        self.config = config or OfflineModelConfig()
        self.completed_calls = 0
        self.cancelled_calls = 0

    async def init(self) -> list[Action]:
        return [self._model_action()]

    async def resolve(self, action_type: ActionKind, name: str) -> Action | None:
        if action_type == ActionKind.MODEL and name == OFFLINE_MODEL:
            return self._model_action()
        return None

    async def list_actions(self) -> list[ActionMetadata]:
        info = _INFO.model_dump(by_alias=True, exclude_none=True)
        return [model_action_metadata(name=OFFLINE_MODEL, info=info)]

    def _model_action(self) -> Action:
        async def _generate(request: ModelRequest[Any], ctx: ActionRunContext) -> ModelResponse:
            return await self._respond(request, ctx)

        return model(
            OFFLINE_MODEL, _generate, info=_INFO, description="Deterministic offline model"
        )

    async def _respond(self, request: ModelRequest[Any], ctx: ActionRunContext) -> ModelResponse:
        cfg, chunks_sent = self.config, 0
        try:
            part = _reply(request)
            pieces = _chunks(part.text, cfg.words_per_chunk) if part.text is not None else []
            if ctx.is_streaming and pieces:
                for i, piece in enumerate(pieces):
                    delay = cfg.first_chunk_delay_ms if i == 0 else cfg.chunk_delay_ms
                    if delay:  # no sleep at all when 0: benchmarks measure the server, not this
                        await asyncio.sleep(delay / 1000)
                    chunk = ModelResponseChunk(
                        role="model", index=0, content=[Part.from_text(piece)]
                    )
                    ctx.send_chunk(chunk)
                    chunks_sent += 1
            else:  # same latency as a stream; a tool request costs one first-chunk delay
                delay = cfg.first_chunk_delay_ms + max(len(pieces) - 1, 0) * cfg.chunk_delay_ms
                if delay:
                    await asyncio.sleep(delay / 1000)
        except asyncio.CancelledError:
            self.cancelled_calls += 1
            _log.info("offline_model_cancelled", chunks_sent=chunks_sent)
            raise
        self.completed_calls += 1
        return ModelResponse(
            message=Message(role="model", content=[part]),
            finish_reason=FinishReason.STOP,
            usage=_usage(request, part.text or ""),
        )


def _reply(request: ModelRequest[Any]) -> Part:
    """The whole answer for one request: a tool request part or a text part."""
    seed, messages = _fingerprint(request), request.messages
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    prompt = messages[last_user].text if last_user >= 0 else ""
    subject = _subject(prompt)
    # Tool responses after the last user turn answer our tool request; without them, ask.
    outputs = [p.tool_response for m in messages[last_user + 1 :] for p in m.content]
    tool_outputs = [out for out in outputs if out is not None]
    if request.tools and not tool_outputs:
        tool, hints = request.tools[0], _hints(prompt, subject, answer=None)
        tool_input = (
            sample(tool.input_schema, seed=seed, hints=hints) if tool.input_schema else None
        )
        return Part.from_tool_request(name=tool.name, input=tool_input, ref="offline-1")
    rng = random.Random(hashlib.sha256(seed.encode()).digest())  # noqa: S311 - not security
    system = " ".join(m.text for m in messages if m.role == "system").lower()
    sentences = [prefix for key, prefix in _STYLES if key in system][:1]
    media = [p.media for p in messages[last_user].content if p.media] if last_user >= 0 else []
    for item in media:
        ctype = item.content_type or _data_url_type(item.url) or "unknown type"
        kind = ctype.split("/")[0] if ctype.split("/")[0] in _MEDIA_KINDS else "file"
        sentences.append(f"The {kind} ({ctype}) shows {rng.choice(_SCENES)}.")
    concise = "concise" in system or "brief" in system
    sentences.append(_answer(prompt, subject, rng, concise=concise))
    for out in tool_outputs:
        said = out.output if isinstance(out.output, str) else json.dumps(out.output, sort_keys=True)
        sentences.append(f"The {out.name} tool says: {said}")
    text = " ".join(s.strip() for s in sentences)
    fmt, schema = request.output.format, request.output.json_schema
    if fmt not in ("json", "array", "jsonl", "enum") and (schema is None or fmt == "text"):
        return Part.from_text(text)
    hints = _hints(prompt, subject, answer=text)
    for out in tool_outputs:  # a structured tool result can fill same-named fields
        if isinstance(out.output, dict):
            hints |= {k: v for k, v in out.output.items() if isinstance(v, str)}
    return Part.from_text(
        _structured(sample(schema or _ANSWER_SCHEMA, seed=seed, hints=hints), fmt)
    )


def _structured(value: Any, fmt: str | None) -> str:
    if fmt == "enum":
        return str(value)
    if fmt == "jsonl" and isinstance(value, list):
        return "\n".join(json.dumps(v, ensure_ascii=False) for v in value)
    return json.dumps(value, ensure_ascii=False)


def _fingerprint(request: ModelRequest[Any]) -> str:
    """Hash of everything that shapes the answer, so equal requests get equal answers."""
    wire = request.model_dump(
        mode="json", by_alias=True, exclude_none=True, include={"messages", "tools", "output"}
    )
    return hashlib.sha256(json.dumps(wire, sort_keys=True).encode()).hexdigest()


def _subject(prompt: str) -> str:
    """A guess at what the prompt is about: a cue phrase, a quote, a name, or content words."""
    head = prompt.split(":", 1)[0]  # "Review this code: …": the instruction names the subject
    cue = _CUE.search(head)
    phrase = _ARTICLE.sub("", _CUE_END.split(cue.group(1))[0].strip()) if cue else ""
    if phrase:
        return " ".join(phrase.split()[:4])
    quoted = _QUOTED.search(prompt)
    if quoted:
        return quoted.group(1).strip()
    rest = head.split(None, 1)[1:]  # a capital on the first word says nothing
    names: list[str] = [
        n for n in _PROPER.findall(rest[0] if rest else "") if n.lower() not in _STOP
    ]
    if names:
        return names[0]
    for text in (head, prompt):
        words = [w for w in _WORD.findall(text) if w.lower() not in _STOP]
        if words:
            return " ".join(words[-2:])
    return "your question"


def _answer(prompt: str, subject: str, rng: random.Random, *, concise: bool) -> str:
    lowered = prompt.lower()
    if not prompt.strip():
        return "Hello! I am the offline model; ask me anything."
    if "joke" in lowered:
        templates = _JOKES
    elif "poem" in lowered or "haiku" in lowered:
        templates = _POEMS
    else:
        templates = _ANSWERS
    text = rng.choice(templates).format(s=subject, S=subject[:1].upper() + subject[1:])
    return text.split(". ")[0].rstrip(".") + "." if concise else text


def _hints(prompt: str, subject: str, *, answer: str | None) -> dict[str, str]:
    """Property-name hints for `sample`: answer text, echoed input, subject, `key: value`."""
    quoted = _QUOTED.search(prompt)
    echo = quoted.group(1) if quoted else prompt
    hints = dict.fromkeys(_ANSWER_KEYS.split(), answer or subject)
    hints |= dict.fromkeys(_ECHO_KEYS.split(), echo) | dict.fromkeys(_SUBJECT_KEYS.split(), subject)
    hints[ROOT_HINT] = answer or subject
    hints |= {key: value.strip() for key, value in _FIELD.findall(prompt)}
    return hints


def _data_url_type(url: str) -> str | None:
    match = re.match(r"data:([^;,]+)", url)
    return match.group(1) if match else None


def _chunks(text: str, words_per_chunk: int) -> list[str]:
    """Split ``text`` into chunks of whole words that concatenate back to it exactly."""
    tokens = re.findall(r"\S+\s*", text)
    if not tokens:
        return [text] if text else []
    tokens[0] = text[: len(text) - len(text.lstrip())] + tokens[0]
    return [
        "".join(tokens[i : i + words_per_chunk]) for i in range(0, len(tokens), words_per_chunk)
    ]


def _usage(request: ModelRequest[Any], output: str) -> ModelUsage:
    input_text = " ".join(m.text for m in request.messages)
    images = sum(1 for m in request.messages for p in m.content if p.media is not None)
    words_in, words_out = len(input_text.split()), len(output.split())
    return ModelUsage(
        input_tokens=words_in,
        output_tokens=words_out,
        total_tokens=words_in + words_out,
        input_characters=len(input_text),
        output_characters=len(output),
        input_images=images or None,
    )
