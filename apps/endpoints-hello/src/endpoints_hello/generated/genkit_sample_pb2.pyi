from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: str
    def __init__(self, status: _Optional[str] = ...) -> None: ...

class JokeRequest(_message.Message):
    __slots__ = ("name", "username")
    NAME_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    username: str
    def __init__(self, name: _Optional[str] = ..., username: _Optional[str] = ...) -> None: ...

class JokeResponse(_message.Message):
    __slots__ = ("joke", "username")
    JOKE_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    joke: str
    username: str
    def __init__(self, joke: _Optional[str] = ..., username: _Optional[str] = ...) -> None: ...

class JokeChunk(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class TranslateRequest(_message.Message):
    __slots__ = ("text", "target_language")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    text: str
    target_language: str
    def __init__(self, text: _Optional[str] = ..., target_language: _Optional[str] = ...) -> None: ...

class TranslationResponse(_message.Message):
    __slots__ = ("original_text", "translated_text", "target_language", "confidence")
    ORIGINAL_TEXT_FIELD_NUMBER: _ClassVar[int]
    TRANSLATED_TEXT_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    original_text: str
    translated_text: str
    target_language: str
    confidence: str
    def __init__(self, original_text: _Optional[str] = ..., translated_text: _Optional[str] = ..., target_language: _Optional[str] = ..., confidence: _Optional[str] = ...) -> None: ...

class ImageRequest(_message.Message):
    __slots__ = ("image_url",)
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    image_url: str
    def __init__(self, image_url: _Optional[str] = ...) -> None: ...

class ImageResponse(_message.Message):
    __slots__ = ("description", "image_url")
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    description: str
    image_url: str
    def __init__(self, description: _Optional[str] = ..., image_url: _Optional[str] = ...) -> None: ...

class CharacterRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class Skills(_message.Message):
    __slots__ = ("strength", "charisma", "endurance")
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    CHARISMA_FIELD_NUMBER: _ClassVar[int]
    ENDURANCE_FIELD_NUMBER: _ClassVar[int]
    strength: int
    charisma: int
    endurance: int
    def __init__(self, strength: _Optional[int] = ..., charisma: _Optional[int] = ..., endurance: _Optional[int] = ...) -> None: ...

class RpgCharacter(_message.Message):
    __slots__ = ("name", "back_story", "abilities", "skills")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BACK_STORY_FIELD_NUMBER: _ClassVar[int]
    ABILITIES_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    name: str
    back_story: str
    abilities: _containers.RepeatedScalarFieldContainer[str]
    skills: Skills
    def __init__(self, name: _Optional[str] = ..., back_story: _Optional[str] = ..., abilities: _Optional[_Iterable[str]] = ..., skills: _Optional[_Union[Skills, _Mapping]] = ...) -> None: ...

class ChatRequest(_message.Message):
    __slots__ = ("question",)
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    question: str
    def __init__(self, question: _Optional[str] = ...) -> None: ...

class ChatResponse(_message.Message):
    __slots__ = ("answer", "persona")
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    PERSONA_FIELD_NUMBER: _ClassVar[int]
    answer: str
    persona: str
    def __init__(self, answer: _Optional[str] = ..., persona: _Optional[str] = ...) -> None: ...

class StoryRequest(_message.Message):
    __slots__ = ("topic",)
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    topic: str
    def __init__(self, topic: _Optional[str] = ...) -> None: ...

class StoryChunk(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class StoryResponse(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class CodeRequest(_message.Message):
    __slots__ = ("description", "language")
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    description: str
    language: str
    def __init__(self, description: _Optional[str] = ..., language: _Optional[str] = ...) -> None: ...

class CodeResponse(_message.Message):
    __slots__ = ("code", "language", "explanation", "filename")
    CODE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    code: str
    language: str
    explanation: str
    filename: str
    def __init__(self, code: _Optional[str] = ..., language: _Optional[str] = ..., explanation: _Optional[str] = ..., filename: _Optional[str] = ...) -> None: ...

class CodeReviewRequest(_message.Message):
    __slots__ = ("code", "language")
    CODE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    language: str
    def __init__(self, code: _Optional[str] = ..., language: _Optional[str] = ...) -> None: ...

class CodeReviewResponse(_message.Message):
    __slots__ = ("review",)
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    review: str
    def __init__(self, review: _Optional[str] = ...) -> None: ...
