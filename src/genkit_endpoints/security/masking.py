# SPDX-License-Identifier: Apache-2.0
"""Secret masking for every log line, ours and the libraries'.

A structlog processor that walks the event (nested dicts, lists, tuples, sets; bounded
depth, cycles cut) and masks three ways: by key name (``api_key``, ``Authorization``,
``client_secret``, ``refresh_token``… but not ``max_tokens``, ``token_count`` or
``secretary``: whole words, not substrings), by value shape inside any string, the
message and exception text included (``Bearer …``, ``AIza…``, ``sk-…``, ``ghp_…``,
JWTs, URL passwords, ``token=…`` query parameters), and by exact value for secrets the
app registers (its API keys and provider keys, which have no recognisable shape).

It runs on every line, the access log included, so the common path is cheap: the fields
the kit itself writes (request id, method, route, status…) are not looked at, short
strings cannot hold a secret, key verdicts are cached, and each shape's regex runs only
when a literal it needs occurs in the string (a C-speed ``in``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # types only: the settings use the masker, and --help loads no logging
    from structlog.types import EventDict, WrappedLogger

__all__ = ["MASK", "SecretMasker", "api_key_secrets", "is_secret_key", "secret_values"]

MASK = "***"
MAX_DEPTH = 8
TOO_DEEP = "<nested too deep to log>"
CYCLE = "<cycle>"
# Registered secrets shorter than this are not masked: they would blank out common words
# (API keys are at least 16 characters, provider keys longer still).
MIN_SECRET_LENGTH = 8
# No shape below fits in fewer characters ("Bearer " + a token, "a://b:c@", "token=x"…).
_MIN_TEXT = 8
_KEY_CACHE_SIZE = 2048

# Fields the kit writes with values of known shape: never masked, never scanned. A
# client-chosen request id that happens to look like a key must still correlate.
VERBATIM_KEYS = frozenset(
    {
        "request_id", "method", "path", "route", "status", "code", "duration_ms", "bytes",
        "client_ip", "level", "logger", "timestamp", "principal", "flow", "exc_info",
        "_record", "_from_structlog", "trace_id", "span_id",
    }
)  # fmt: skip

# Key names, as lower-case words (``X-API-Key`` → x, api, key; ``clientSecret`` → client,
# secret). Secret when any word is one of these…
_SECRET_WORDS = frozenset(
    {
        "password", "passwd", "passphrase", "secret", "secrets", "credential",
        "credentials", "cookie", "cookies", "authorization", "apikey", "apikeys", "dsn",
        "bearer", "jwt",
    }
)  # fmt: skip
# …or the last word is one of these (``refresh_token`` but not ``token_count``)…
_SECRET_LAST_WORDS = frozenset({"token", "auth"})
# …or the last two words are one of these (``openai_api_key`` but not ``cache_key``).
_SECRET_KEY_PAIRS = frozenset(
    {
        ("api", "key"), ("api", "keys"), ("private", "key"), ("secret", "key"),
        ("access", "key"), ("signing", "key"), ("encryption", "key"), ("master", "key"),
        ("session", "key"),
    }
)  # fmt: skip
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")


def is_secret_key(key: str) -> bool:
    """Whether a field called ``key`` holds a secret (case, ``-``/``_``, camelCase agnostic)."""
    words = [w for w in _WORD_SPLIT.split(_CAMEL.sub("_", key).lower()) if w]
    if not words:
        return False
    if words[-1] in _SECRET_LAST_WORDS or not _SECRET_WORDS.isdisjoint(words):
        return True
    return len(words) >= 2 and (words[-2], words[-1]) in _SECRET_KEY_PAIRS


# Value shapes: (trigger, pattern, replacement). A pattern runs only when its trigger, a
# literal every match contains, is in the string; a pattern may be listed under several.
_PARAM_NAMES = (
    r"(?:[\w-]*[_-])?(?:api[_-]?key|apikey|access[_-]?key|token|secret|password|passwd"
    r"|signature|credential)|key|sig|auth"
)
_COLON_NAMES = (
    r"(?:x-(?:goog-)?)?api[_-]?key|password|passwd|(?:client[_-])?secret"
    r"|(?:access|refresh|id|auth|session)[_-]?token"
)
_BEARER = re.compile(r"\b([Bb]earer|BEARER)(\s+)[\w.~+/-]{6,}=*")
_SK = re.compile(r"\b(sk-(?:proj-|ant-(?:api\d+-)?|svcacct-|admin-)?)[A-Za-z0-9_-]{16,}")
_AWS = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
_COLON = re.compile(rf"(?i)\b({_COLON_NAMES})(\s*:\s*)(?![Bb]earer\b|\*\*\*)[^\s\"',;]+")
_COOKIE = re.compile(r"(?i)\b((?:set-)?cookie)(\s*:\s*)(?!\*\*\*)[^\r\n\"']+")
_Replacement = str | Callable[[re.Match[str]], str]
_RULES: tuple[tuple[str, re.Pattern[str], _Replacement], ...] = (
    # Authorization schemes: keep the scheme, mask the credential.
    ("earer", _BEARER, rf"\1\2{MASK}"),
    ("EARER", _BEARER, rf"\1\2{MASK}"),
    ("Basic", re.compile(r"\b(Basic)(\s+)[A-Za-z0-9+/]{6,}=*"), rf"\1\2{MASK}"),
    # Provider keys: keep the prefix, so a reader still sees what kind of key leaked.
    ("AIza", re.compile(r"AIza[0-9A-Za-z_-]{35}"), f"AIza{MASK}"),
    ("sk-", _SK, rf"\1{MASK}"),
    ("gh", re.compile(r"\b(gh[pousr]_|github_pat_)[A-Za-z0-9_]{20,}"), rf"\1{MASK}"),
    ("xox", re.compile(r"\b(xox[abposr]-)[A-Za-z0-9-]{10,}"), rf"\1{MASK}"),
    ("AKIA", _AWS, rf"\1{MASK}"),
    ("ASIA", _AWS, rf"\1{MASK}"),
    ("eyJ", re.compile(r"\beyJ[\w-]{4,}\.eyJ[\w-]{4,}\.[\w-]*"), MASK),
    # scheme://user:password@host → scheme://user:***@host (the last @ ends the password).
    ("://", re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]*):[^\s/]+@"), rf"\1:{MASK}@"),
    # name=value in query strings and text: ?key=…, &access_token=…, password='…'
    (
        "=",
        re.compile(rf"(?i)(?<![\w-])({_PARAM_NAMES})=(?:([\"'])(?:(?!\2).)*\2|[^&\s#'\",;]+)"),
        rf"\1={MASK}",
    ),
    # name: value in header lines and text: "X-API-Key: …", "password: …"
    (":", _COLON, rf"\1\2{MASK}"),
    # A cookie header holds several cookies: all of them, to the end of the line.
    ("ookie", _COOKIE, rf"\1\2{MASK}"),
    ("OOKIE", _COOKIE, rf"\1\2{MASK}"),
)


# "password": "…" / 'api_key': '…' inside reprs and JSON text (exception messages).
_QUOTED_PAIR = re.compile(
    r"""(["'])([\w-]{2,64})\1(\s*[:=]\s*)(["'])((?:\\.|(?!\4).){1,2000}?)\4"""
)


def _mask_quoted(match: re.Match[str]) -> str:
    if not is_secret_key(match[2]) or not match[5]:
        return match[0]
    return f"{match[1]}{match[2]}{match[1]}{match[3]}{match[4]}{MASK}{match[4]}"


def _masked(value: Any) -> Any:
    # Unset stays visible as unset ("no key configured" is worth seeing); the rest goes.
    if value is None or isinstance(value, bool) or (isinstance(value, str | bytes) and not value):
        return value
    return MASK


class SecretLike(Protocol):
    def get_secret_value(self) -> str: ...


def secret_values(*values: str | SecretLike | None) -> list[str]:
    """Plain values of configured secrets (``SecretStr`` or ``str``); unset ones skipped."""
    out: list[str] = []
    for value in values:
        plain = value if isinstance(value, str) or value is None else value.get_secret_value()
        if plain:
            out.append(plain)
    return out


def api_key_secrets(spec: str | SecretLike | None) -> list[str]:
    """The plaintext keys of an ``API_KEYS`` list (``name:key,name:sha256:<hex>``).

    Hashed entries hold no secret; the names are not secret either.
    """
    out: list[str] = []
    for text in secret_values(spec):
        for entry in text.split(","):
            _, sep, key = entry.strip().partition(":")
            if sep and key and not key.startswith("sha256:"):
                out.append(key)
    return out


class SecretMasker:
    """The masking processor; ``secrets`` are exact values to mask wherever they occur.

    Place it after ``format_exc_info`` so tracebacks are masked as text too. Containers
    the caller logged are never changed in place: a masked one is a copy.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        known = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self._secrets = tuple(known)
        self._secret_re = re.compile("|".join(map(re.escape, known))) if known else None
        self._keys: dict[str, bool] = {}

    def __call__(self, _: WrappedLogger, __: str, event: EventDict) -> EventDict:
        for key, value in event.items():
            if key in VERBATIM_KEYS:
                continue
            if self.secret_key(key):
                masked = _masked(value)
            elif isinstance(value, str):  # most fields: no container bookkeeping
                masked = self.mask_text(value)
            else:
                masked = self._value(value, 1, set())
            if masked is not value:
                event[key] = masked  # an existing key: safe while iterating
        return event

    def secret_key(self, key: str) -> bool:
        verdict = self._keys.get(key)
        if verdict is None:
            verdict = is_secret_key(key)
            if len(self._keys) < _KEY_CACHE_SIZE:  # log keys are few; never grow unbounded
                self._keys[key] = verdict
        return verdict

    def mask_text(self, text: str) -> str:
        """``text`` with every secret-shaped or registered value masked; the rest intact."""
        if len(text) < _MIN_TEXT:
            return text
        for trigger, pattern, replacement in _RULES:
            if trigger in text:
                text = pattern.sub(replacement, text)
        if ('"' in text or "'" in text) and ("=" in text or ":" in text):
            text = _QUOTED_PAIR.sub(_mask_quoted, text)
        if self._secret_re is not None:
            for secret in self._secrets:  # a loop, not any(): no generator on the hot path
                if secret in text:
                    return self._secret_re.sub(MASK, text)
        return text

    def _field(self, key: Any, value: Any, depth: int, path: set[int]) -> Any:
        if isinstance(key, bytes):
            key = key.decode("latin-1")
        if isinstance(key, str) and self.secret_key(key):
            return _masked(value)
        return self._value(value, depth, path)

    def _value(self, value: Any, depth: int, path: set[int]) -> Any:
        if isinstance(value, str):
            return self.mask_text(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, dict | list | tuple | set | frozenset):
            return self._container(value, depth, path)
        if isinstance(value, bytes | bytearray):
            text = bytes(value).decode("utf-8", "replace")
            masked = self.mask_text(text)
            return value if masked == text else masked
        return self._other(value)

    def _container(self, value: Any, depth: int, path: set[int]) -> Any:
        if depth > MAX_DEPTH:
            return TOO_DEEP
        if id(value) in path:
            return CYCLE
        path.add(id(value))
        try:
            if isinstance(value, dict):
                return self._mapping(value, depth + 1, path)
            return self._sequence(value, depth + 1, path)
        finally:
            path.discard(id(value))

    def _mapping(self, value: Mapping[Any, Any], depth: int, path: set[int]) -> Any:
        out: dict[Any, Any] | None = None
        for key, item in value.items():
            masked = self._field(key, item, depth, path)
            if masked is not item:
                if out is None:
                    out = dict(value)
                out[key] = masked
        return value if out is None else out

    def _sequence(self, value: Any, depth: int, path: set[int]) -> Any:
        items = list(value)
        # A (name, value) pair, as in header lists: the name decides, like a dict key.
        if len(items) == 2 and isinstance(items[0], str | bytes):
            name = items[0]
            masked = [self._value(name, depth, path), self._field(name, items[1], depth, path)]
        else:
            masked = [self._value(item, depth, path) for item in items]
        if all(m is i for m, i in zip(masked, items, strict=True)):
            return value
        return tuple(masked) if isinstance(value, tuple) else masked

    def _other(self, value: Any) -> Any:
        # Anything else is rendered with str() (orjson's default): URLs with passwords,
        # exceptions with keys in their message. Unchanged, it is left as it was.
        try:
            text = str(value)
        except Exception:  # a broken __str__ must not break logging
            return "<unprintable>"
        masked = self.mask_text(text)
        return value if masked == text else masked
