# SPDX-License-Identifier: Apache-2.0
"""Deterministic, readable example values for JSON Schemas (Pydantic v2 / Genkit dialect).

`sample` walks a schema (``$ref``/``$defs``, ``anyOf``/``oneOf``/``allOf``, types,
``enum``/``const``/``default``, string, number, array and object keywords) and builds a
value that validates against it. Strings are made of English words, or generated from
``pattern`` by `regex_sample`; the caller's ``hints`` (property name → text) are used
when they satisfy the constraints. The same schema and seed always give the same
value: all randomness comes from one ``random.Random`` seeded with SHA-256 of the seed.
Limits: ``not``, ``if``/``then``, ``patternProperties``, ``contains`` and regex lookarounds
are ignored, so such schemas get a best-effort value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from genkit_endpoints.model.regex_sample import sample_pattern

__all__ = ["ROOT_HINT", "sample"]

ROOT_HINT = ""
"""Hint key for a value that has no property name (the schema root)."""

_MAX_DEPTH = 6  # past this, only required properties and minItems: recursive models end
_ADJ = "amber bright calm clever crisp gentle golden green quiet rapid silver steady swift warm"
_NOUN = "river meadow harbor lantern forest garden island valley orchard willow pebble cloud"
_VERB = "drifts glows rests waits wanders shines hums leans turns settles"
_PREP = "past near beyond under across beside"
_ADJS, _NOUNS, _VERBS, _PREPS = (s.split() for s in (_ADJ, _NOUN, _VERB, _PREP))
_WORDS = tuple(sorted({*_ADJS, *_NOUNS, *_VERBS, "alpha", "beta", "code", "python", "data"}))


_IMPLIED_TYPES = (
    ("object", {"properties", "additionalProperties", "required"}),
    ("array", {"items", "prefixItems", "minItems", "maxItems"}),
    ("number", {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}),
)


def sample(schema: Mapping[str, Any], *, seed: str, hints: Mapping[str, str] | None = None) -> Any:
    """Return a JSON value valid against ``schema``, the same for the same seed.

    ``hints`` maps property names to suggested text (``ROOT_HINT`` for the root value).
    A hint applies to a property with the same name or one ending in it, compared word
    by word ignoring case (``"text"`` fills ``original_text``), when it fits the schema.
    """
    rng = random.Random(hashlib.sha256(seed.encode()).digest())  # noqa: S311 - fake data, not secrets
    return _Sampler(schema, rng, hints or {}).value(schema, ROOT_HINT, 0)


def _words(name: str) -> tuple[str, ...]:
    return tuple(w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name))


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**base, **extra}
    if "properties" in base and "properties" in extra:
        merged["properties"] = {**base["properties"], **extra["properties"]}
    if "required" in base and "required" in extra:
        merged["required"] = [*base["required"], *extra["required"]]
    return merged


class _Sampler:
    def __init__(self, root: Mapping[str, Any], rng: random.Random, hints: Mapping[str, str]):
        self.root, self.rng = root, rng
        self.hints = [(_words(key), text) for key, text in hints.items()]

    # One return per keyword, in precedence order, reads better than a dispatch table.
    def value(self, schema: Any, name: str | None, depth: int) -> Any:  # noqa: PLR0911
        if not isinstance(schema, Mapping):  # boolean schema: true takes anything, false nothing
            return None if schema is False else self.hint(name) or self.prose(name, 0, None)
        s = self.flatten(schema)
        if "const" in s:
            return s["const"]
        if "default" in s and self.accepts(s["default"], s):
            return s["default"]
        if "enum" in s:
            hint = self.hint(name)
            return hint if hint is not None and hint in s["enum"] else self.pick_non_null(s["enum"])
        for key in ("anyOf", "oneOf"):
            if key in s:
                branches = s[key]
                real = [b for b in branches if self.flatten(b).get("type") != "null"]
                if depth >= _MAX_DEPTH and len(real) < len(branches):
                    return None
                rest = {k: v for k, v in s.items() if k not in (key, "default")}
                return self.value(_merge(rest, self.rng.choice(real or branches)), name, depth)
        return self.of_type(s, name, depth)

    def of_type(self, s: Mapping[str, Any], name: str | None, depth: int) -> Any:
        kind = s.get("type")
        if isinstance(kind, list):
            kind = self.pick_non_null(kind)
        kind = kind or next((k for k, keys in _IMPLIED_TYPES if keys & s.keys()), "string")
        if kind == "null" or depth > 3 * _MAX_DEPTH:
            return None
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind in ("integer", "number"):
            return self.number(s, kind == "integer")
        if kind == "array":
            return self.array(s, depth)
        if kind == "object":
            return self.object(s, depth)
        return self.string(s, name)

    def flatten(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        s = dict(schema)
        for _ in range(32):  # bounded: a $ref chain that never lands on a schema stops here
            if "$ref" in s:
                ref = s.pop("$ref")
                s = _merge(self.resolve(ref), s)
            elif "allOf" in s:
                merged: dict[str, Any] = {}
                for part in s.pop("allOf"):
                    merged = _merge(merged, self.flatten(part) if isinstance(part, Mapping) else {})
                s = _merge(merged, s)
            else:
                break
        return s

    def resolve(self, ref: str) -> Mapping[str, Any]:
        node: Any = self.root
        if not ref.startswith("#"):
            return {}  # remote refs are out of scope: treat as "anything"
        for token in filter(None, ref[1:].split("/")):
            key = token.replace("~1", "/").replace("~0", "~")
            node = node.get(key, {}) if isinstance(node, Mapping) else {}
        return node if isinstance(node, Mapping) else {}

    def pick_non_null(self, options: list[Any]) -> Any:
        real = [o for o in options if o is not None and o != "null"]
        return self.rng.choice(real or options)

    def hint(self, name: str | None) -> str | None:
        if name is None:
            return None
        words = _words(name)
        exact = [text for key, text in self.hints if key == words]
        suffix = [text for key, text in self.hints if key and words[-len(key) :] == key]
        return next(iter(exact + suffix), None)

    def accepts(self, value: Any, s: Mapping[str, Any]) -> bool:
        """Cheap check for defaults: scalars against scalar schemas; False when unsure."""
        s = self.flatten(s)
        if "enum" in s:
            return value is not None and value in s["enum"]
        if "anyOf" in s or "oneOf" in s:
            return any(self.accepts(value, b) for b in s.get("anyOf") or s.get("oneOf") or [])
        kind = s.get("type")
        if isinstance(value, bool) or value is None:
            return kind == "boolean" and value is not None
        if isinstance(value, int | float):
            typed = kind == "number" or (kind == "integer" and isinstance(value, int))
            return typed and self.number_ok(value, s)
        return isinstance(value, str) and kind == "string" and self.string_ok(value, s, fit=True)

    @staticmethod
    def string_ok(text: str, s: Mapping[str, Any], *, fit: bool = False) -> bool:
        """Length and pattern; ``fit`` (for outside text) also refuses any ``format``."""
        if len(text) < s.get("minLength", 0) or len(text) > s.get("maxLength", math.inf):
            return False
        if fit and "format" in s:
            return False
        try:
            return "pattern" not in s or re.search(s["pattern"], text) is not None
        except re.error:
            return True  # a pattern Python cannot compile: nothing to check against

    def string(self, s: Mapping[str, Any], name: str | None) -> str:
        hint = self.hint(name)
        if hint is not None and self.string_ok(hint, s, fit=True):
            return hint
        text = ""
        for attempt in range(16):
            if "pattern" in s:
                # Words read best but may keep missing the rest of the pattern: later attempts
                # use plain characters, and every third one doubles the room for repeats.
                words, spread = (_WORDS if attempt < 3 else ()), 6 << (attempt // 3)
                # None: Python cannot parse the pattern, so string_ok cannot check it either.
                text = sample_pattern(s["pattern"], self.rng, words=words, spread=spread) or ""
            elif s.get("format") in _FORMATS:
                text = _FORMATS[s["format"]](self.rng)
            else:
                text = self.prose(name, s.get("minLength", 0), s.get("maxLength"))
            if self.string_ok(text, s):
                return text
        for fallback in (self.prose(name, s.get("minLength", 0), s.get("maxLength")), "a", "0"):
            if self.string_ok(fallback, s):
                return fallback
        return text  # best effort: a constraint this generator cannot meet (e.g. lookaround)

    def prose(self, name: str | None, low: int, high: int | None) -> str:
        pick = self.rng.choice
        if name is None:  # array items: short phrases make better list entries
            text = f"{pick(_ADJS)} {pick(_NOUNS)}"
        elif _words(name)[-1:] in (("name",), ("title",), ("label",)):
            text = f"{pick(_ADJS)} {pick(_NOUNS)}".title()
        else:
            words = (pick(_ADJS), pick(_NOUNS), pick(_VERBS), pick(_PREPS), pick(_NOUNS))
            text = "The {} {} {} {} the {}.".format(*words)
        while len(text) < low:
            text += f" {pick(_WORDS)}"
        if high is not None and len(text) > high:
            cut = text[:high].rsplit(" ", 1)[0]
            text = cut if low <= len(cut) and cut else text[:high]
        return text

    def number(self, s: Mapping[str, Any], integer: bool) -> int | float:
        low, high = s.get("minimum"), s.get("maximum")
        xlow, xhigh = s.get("exclusiveMinimum"), s.get("exclusiveMaximum")
        if isinstance(xlow, bool):  # draft 4: a boolean flag on minimum
            low, xlow = (None, low) if xlow else (low, None)
        if isinstance(xhigh, bool):
            high, xhigh = (None, high) if xhigh else (high, None)
        step = 1 if integer else 0.01
        lows = [v for v in (low, None if xlow is None else xlow + step) if v is not None]
        highs = [v for v in (high, None if xhigh is None else xhigh - step) if v is not None]
        lo = max(lows) if lows else (min(highs) - 100 if highs else 0)
        hi = min(highs) if highs else lo + 100
        mult = s.get("multipleOf")
        if mult:
            ks = list(range(math.ceil(lo / mult), math.floor(hi / mult) + 1))[:1000]
            self.rng.shuffle(ks)
            candidates: list[int | float] = [k * mult for k in ks[:50]]
        elif integer:
            candidates = [self.rng.randint(math.ceil(lo), max(math.ceil(lo), math.floor(hi)))]
        else:
            candidates = [round(self.rng.uniform(lo, hi), 2), (lo + hi) / 2]
        for candidate in [*candidates, 0]:
            v = int(candidate) if integer and float(candidate).is_integer() else candidate
            if self.number_ok(v, s) and (not integer or isinstance(v, int)):
                return v
        return candidates[0] if candidates else lo

    @staticmethod
    def number_ok(v: float, s: Mapping[str, Any]) -> bool:
        checks = [("minimum", v.__ge__), ("maximum", v.__le__)]
        checks += [("exclusiveMinimum", v.__gt__), ("exclusiveMaximum", v.__lt__)]
        if any(k in s and not isinstance(s[k], bool) and not ok(s[k]) for k, ok in checks):
            return False
        mult = s.get("multipleOf")
        if not mult:
            return True
        quotient = v / mult  # the float rule jsonschema applies; Pydantic is more lenient
        return quotient == int(quotient) if isinstance(quotient, float) else v % mult == 0

    def array(self, s: Mapping[str, Any], depth: int) -> list[Any]:
        prefix, items = s.get("prefixItems", []), s.get("items", {})
        low, high = s.get("minItems", 0), s.get("maxItems")
        if depth >= _MAX_DEPTH:
            count = low
        else:
            floor = max(low, 1) if high is None or high >= 1 else 0
            count = self.rng.randint(floor, max(floor, min(3 if high is None else high, 3)))
        if items is False:
            count = max(low, min(count, len(prefix)))
        out: list[Any] = []
        seen: set[str] = set()
        for _ in range(count * 10 if s.get("uniqueItems") else count):
            if len(out) == count:
                break
            item = self.value(
                prefix[len(out)] if len(out) < len(prefix) else items, None, depth + 1
            )
            key = json.dumps(item, sort_keys=True, default=str)
            if s.get("uniqueItems") and key in seen:
                continue
            seen.add(key)
            out.append(item)
        return out

    def object(self, s: Mapping[str, Any], depth: int) -> dict[str, Any]:
        props: Mapping[str, Any] = s.get("properties", {})
        required = set(s.get("required", []))
        out = {
            key: self.value(sub, key, depth + 1)
            for key, sub in props.items()
            if sub is not False and (depth < _MAX_DEPTH or key in required)
        }
        extra = s.get("additionalProperties", {})
        extra_schema = extra if isinstance(extra, Mapping) else {}
        for key in sorted(required - out.keys()):
            out[key] = self.value(extra_schema, key, depth + 1)
        wanted = s.get("minProperties", 0)
        if not props and extra is not False and depth < _MAX_DEPTH:
            wanted = max(wanted, self.rng.randint(1, 2))
        limit = min(wanted, s.get("maxProperties", wanted))
        if extra is not False and len(out) < limit:
            for word in self.rng.sample(_WORDS, len(_WORDS)):
                if len(out) >= limit:
                    break
                if word not in out:
                    out[word] = self.value(extra_schema, word, depth + 1)
        return out


def _date(rng: random.Random) -> dt.date:
    return dt.date(rng.randint(2020, 2026), rng.randint(1, 12), rng.randint(1, 28))


_FORMATS: dict[str, Callable[[random.Random], str]] = {
    "email": lambda r: f"{r.choice(_ADJS)}.{r.choice(_NOUNS)}@example.com",
    "uri": lambda r: f"https://example.com/{r.choice(_NOUNS)}/{r.choice(_WORDS)}",
    "uri-reference": lambda r: f"https://example.com/{r.choice(_NOUNS)}",
    "iri": lambda r: f"https://example.com/{r.choice(_NOUNS)}",
    "hostname": lambda r: f"{r.choice(_NOUNS)}.example.com",
    "date": lambda r: _date(r).isoformat(),
    "date-time": lambda r: (
        f"{_date(r).isoformat()}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00Z"
    ),
    "time": lambda r: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00",
    "duration": lambda r: f"PT{r.randint(1, 90)}M",
    "uuid": lambda r: str(uuid.UUID(int=r.getrandbits(128), version=4)),
    "ipv4": lambda r: f"192.0.2.{r.randint(1, 254)}",
    "ipv6": lambda r: f"2001:db8::{r.randint(1, 0xFFFF):x}",
}
