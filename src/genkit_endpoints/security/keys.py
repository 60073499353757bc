# SPDX-License-Identifier: Apache-2.0
"""API keys and the authenticated principal, with no transport types.

REST middleware and the gRPC interceptor are thin layers over this module, so both accept
the same keys in the same headers and reject the same ambiguous requests. A keyring holds
SHA-256 digests only: keys can be configured in plaintext (``name:key``) or already
hashed (``name:sha256:<64 hex>``, made with ``printf %s KEY | sha256sum``) so plaintext
keys need not sit in env files. Keys are random secrets of at least 16 characters, not
passwords, so an unsalted fast hash is enough: nothing is gained by guessing digests.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

from genkit_endpoints.core.context import Principal

__all__ = [
    "INVALID_KEY",
    "KEY_IN_URL",
    "MAX_KEY_BYTES",
    "MIN_KEY_LENGTH",
    "MISSING_KEY",
    "ONE_KEY_ONLY",
    "ApiKeyring",
    "Principal",
    "bearer_token",
    "choose_key",
]

MIN_KEY_LENGTH = 16
# Longer values are refused before hashing: a client cannot make us hash megabytes.
MAX_KEY_BYTES = 512
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_KEY = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: what survives a header unchanged
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
_HASHED = "sha256:"

# What a client is told, on REST (problem detail) and gRPC (status message) alike. None of
# them says whether a key or a key name exists.
MISSING_KEY = "An API key is required: send it in the X-API-Key header or as Authorization: Bearer."
INVALID_KEY = "The API key is not valid."
ONE_KEY_ONLY = "Send one API key, in one header: X-API-Key or Authorization: Bearer."
KEY_IN_URL = "API keys go in the X-API-Key or Authorization header, never in the URL."


class ApiKeyring:
    """Named API keys, kept as SHA-256 digests only; compared in constant time."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Iterable[tuple[str, bytes]]) -> None:
        """``entries`` are (name, SHA-256 digest) pairs; ``parse`` is the usual way in."""
        checked: list[tuple[bytes, Principal]] = []
        names: set[str] = set()
        digests: set[bytes] = set()
        for position, (name, digest) in enumerate(entries, 1):
            _check_name(name, position)
            if len(digest) != hashlib.sha256().digest_size:
                raise ValueError(f"API key {name!r}: a digest must be 32 bytes of SHA-256")
            if name in names:
                raise ValueError(f"API key name {name!r} appears more than once")
            if digest in digests:
                raise ValueError(f"API key {name!r} has the same key as an earlier entry")
            names.add(name)
            digests.add(digest)
            checked.append((digest, Principal(name, "api_key")))
        if not checked:
            raise ValueError("the API key list is empty; leave it unset to turn authentication off")
        self._entries = tuple(checked)

    @classmethod
    def parse(cls, spec: str) -> ApiKeyring:
        """Parse ``name:key`` / ``name:sha256:<64 hex>`` entries separated by commas.

        A plaintext key may contain ``:`` but not ``,`` or spaces, and may not start with
        ``sha256:``. Messages name the entry by position or name, never the key.
        """
        pairs: list[tuple[str, bytes]] = []
        for position, raw in enumerate(spec.split(","), 1):
            entry = raw.strip()
            if not entry:
                continue  # a trailing comma is harmless
            name, sep, secret = entry.partition(":")
            if not sep or not name:
                raise ValueError(f"API key entry {position} must look like name:key")
            _check_name(name, position)
            if secret.startswith(_HASHED):
                hex_digest = secret.removeprefix(_HASHED)
                if not _HEX_DIGEST.match(hex_digest):
                    raise ValueError(
                        f"API key {name!r}: a hashed key is sha256: and 64 hex digits "
                        "(printf %s KEY | sha256sum)"
                    )
                pairs.append((name, bytes.fromhex(hex_digest)))
                continue
            if not secret:
                raise ValueError(f"API key {name!r} is empty")
            if not _KEY.match(secret):
                raise ValueError(f"API key {name!r} must be visible ASCII characters, no spaces")
            if len(secret) < MIN_KEY_LENGTH:
                raise ValueError(
                    f"API key {name!r} is shorter than {MIN_KEY_LENGTH} characters; "
                    "use a random key (e.g. openssl rand -hex 32)"
                )
            pairs.append((name, hashlib.sha256(secret.encode("ascii")).digest()))
        return cls(pairs)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(principal.name for _, principal in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ApiKeyring(names={list(self.names)!r})"  # never the digests

    def authenticate(self, presented: bytes | str) -> Principal | None:
        """The principal whose key was presented, or None.

        Every stored digest is compared, match or not, so the time taken does not tell
        which entry (or whether an early one) matched.
        """
        raw = presented.encode("utf-8", "replace") if isinstance(presented, str) else presented
        if not raw or len(raw) > MAX_KEY_BYTES:
            return None
        digest = hashlib.sha256(raw).digest()
        found: Principal | None = None
        for stored, principal in self._entries:
            if hmac.compare_digest(digest, stored):
                found = principal
        return found


def _check_name(name: str, position: int) -> None:
    if not _NAME.match(name):
        raise ValueError(
            f"API key entry {position}: the name must be 1-64 characters of A-Z a-z 0-9 . _ -"
        )


def bearer_token(value: bytes) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` value (scheme case-insensitive).

    None for another scheme (Basic, …): that header then carries no API key. An empty
    token is returned as ``b""`` so the caller can treat it as a missing key.
    """
    scheme, _, token = value.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return token.strip()


def choose_key(api_key_values: list[bytes], authorization_values: list[bytes]) -> bytes | str:
    """The one presented key, or the client-facing reason there is none.

    ``api_key_values`` are the ``X-API-Key`` values, ``authorization_values`` the
    ``Authorization`` values, in the order received. A header sent twice, or both headers
    with different keys, is refused rather than guessed at: a proxy and a client
    disagreeing about the key is a bug or an attack either way.
    """
    if len(api_key_values) > 1 or len(authorization_values) > 1:
        return ONE_KEY_ONLY
    api_key = api_key_values[0].strip() if api_key_values else b""
    bearer = bearer_token(authorization_values[0]) if authorization_values else None
    if api_key and bearer and not hmac.compare_digest(api_key, bearer):
        return ONE_KEY_ONLY
    key = api_key or bearer
    return key if key else MISSING_KEY
