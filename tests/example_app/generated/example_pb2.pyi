from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class SummarizeRequest(_message.Message):
    __slots__ = ("text", "max_words")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MAX_WORDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    max_words: int
    def __init__(self, text: _Optional[str] = ..., max_words: _Optional[int] = ...) -> None: ...

class SummaryResponse(_message.Message):
    __slots__ = ("summary", "word_count")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    WORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    summary: str
    word_count: int
    def __init__(self, summary: _Optional[str] = ..., word_count: _Optional[int] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("to",)
    TO_FIELD_NUMBER: _ClassVar[int]
    to: int
    def __init__(self, to: _Optional[int] = ...) -> None: ...

class CountChunk(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class ShoutRequest(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class ShoutResponse(_message.Message):
    __slots__ = ("text", "caller")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    text: str
    caller: str
    def __init__(self, text: _Optional[str] = ..., caller: _Optional[str] = ...) -> None: ...
