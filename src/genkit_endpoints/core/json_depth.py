# SPDX-License-Identifier: Apache-2.0
"""The nesting limit of JSON request bodies: too deep is a 422, never a 500.

JSON parsers recurse, and each stops somewhere else: orjson at 1024 levels, pydantic's
parser at a few hundred, and a document that passes both can still cost a validator
deep recursion. So the raw bytes are checked before any parser sees them, against one
limit that is the same on every transport. Most bodies cannot be too deep at all (they
hold fewer brackets than the limit), which one C-speed count proves; only the others get
the exact check, which still runs in C: strings are cut out (brackets inside them do not
nest), everything but brackets is dropped, and innermost ``[]`` pairs are removed level
by level, at most ``max_depth`` times.
"""

from __future__ import annotations

from genkit_endpoints.core.errors import InvalidInput

DEFAULT_JSON_MAX_DEPTH = 32

_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Objects and arrays nest alike; a mismatched pair ("[}") is not JSON and fails to parse.
_SQUARE = bytes.maketrans(b"{}", b"[]")


def _structure(body: bytes) -> bytes:
    """The brackets of ``body`` outside strings, objects' braces written as ``[]``."""
    if b"\\" in body:
        # Escapes pair up from the left: escaped backslashes go first, then escaped quotes.
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    if b'"' in body:
        body = b"".join(body.split(b'"')[::2])  # the even pieces lie outside strings
    return body.translate(_SQUARE, _NOT_BRACKETS)


def json_too_deep(body: bytes, max_depth: int) -> bool:
    """True when ``body`` nests arrays/objects more than ``max_depth`` levels deep.

    ``[]`` is one level, ``{"a": [1]}`` two. Malformed JSON is judged by the nesting it
    does have; the parser reports the rest.
    """
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False
    brackets = _structure(body)
    if b"[" * (max_depth + 1) in brackets:
        return True  # the usual attack, "[[[[…", needs no more than this
    # Pass k removes the pairs whose contents nest k - 1 levels deep; a pair still
    # adjacent after max_depth passes has more than max_depth levels. The worst case (a
    # megabyte of legal depth-32 nesting) costs about what pydantic's parser spends on it.
    for _ in range(max_depth):
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return False  # nothing left that nests (or only unbalanced brackets)
        brackets = shorter
    return b"[]" in brackets


def check_json_depth(body: bytes, max_depth: int) -> None:
    """Raise ``InvalidInput`` (422) when ``body`` nests deeper than ``max_depth``."""
    if json_too_deep(body, max_depth):
        raise InvalidInput(
            errors=[
                {
                    "field": "body",
                    "message": f"JSON nested deeper than {max_depth} levels",
                    "type": "json_depth",
                }
            ]
        )


def validate_max_depth(max_depth: int) -> int:
    """The limit itself, checked where it is configured (a config error raises)."""
    if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1:
        raise ValueError(f"json_max_depth must be a positive integer, not {max_depth!r}")
    return max_depth
