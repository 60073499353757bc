# SPDX-License-Identifier: Apache-2.0
"""API keys: the keyring, and the REST middleware on a tiny raw ASGI app."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
import structlog

from endpoints_hello.app import APP
from genkit_endpoints import Settings
from genkit_endpoints.core.context import current_principal
from genkit_endpoints.http.middleware.auth import WWW_AUTHENTICATE, ApiKeyMiddleware
from genkit_endpoints.http.middleware.request_id import RequestIdMiddleware
from genkit_endpoints.http.types import Receive, Scope, Send
from genkit_endpoints.security import keys as auth
from genkit_endpoints.security.keys import ApiKeyring, Principal, bearer_token, choose_key
from genkit_endpoints.serving.cli import parse_settings
from tests.unit.asgi_helpers import Captured, call, http_scope

ALICE_KEY = "alice-0123456789abcdef"
BOB_KEY = "bob-fedcba9876543210-xyz"
CAROL_KEY = "carol-key-only-in-hashed-form"
CAROL_DIGEST = hashlib.sha256(CAROL_KEY.encode()).hexdigest()
SPEC = f"alice:{ALICE_KEY}, bob:{BOB_KEY},carol:sha256:{CAROL_DIGEST}"
EXEMPT = frozenset({"/health", "/ready"})


# --- keyring ----------------------------------------------------------------------------


def test_plaintext_and_hashed_keys_authenticate_as_their_names() -> None:
    ring = ApiKeyring.parse(SPEC)
    assert ring.authenticate(ALICE_KEY) == Principal("alice", "api_key")
    assert ring.authenticate(BOB_KEY.encode()) == Principal("bob", "api_key")
    assert ring.authenticate(CAROL_KEY) == Principal("carol", "api_key")
    assert ring.names == ("alice", "bob", "carol")
    assert len(ring) == 3


def test_hashed_form_accepts_upper_case_hex_from_any_tool() -> None:
    ring = ApiKeyring.parse(f"carol:sha256:{CAROL_DIGEST.upper()}")
    assert ring.authenticate(CAROL_KEY) == Principal("carol", "api_key")


@pytest.mark.parametrize(
    "presented",
    ["", "wrong-key-0123456789", ALICE_KEY + "x", ALICE_KEY[:-1], ALICE_KEY.upper(), CAROL_DIGEST],
)
def test_other_values_do_not_authenticate(presented: str) -> None:
    """Also the digest itself: the hashed form is not a second password."""
    assert ApiKeyring.parse(SPEC).authenticate(presented) is None


def test_oversized_value_is_refused_without_hashing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    ring = ApiKeyring.parse(f"big:{'k' * 600}")  # configured, but longer than any accepted
    hashed: list[int] = []
    real_sha256 = hashlib.sha256

    def counting_sha256(data: bytes = b"") -> Any:
        hashed.append(len(data))
        return real_sha256(data)

    monkeypatch.setattr(auth.hashlib, "sha256", counting_sha256)
    assert ring.authenticate("k" * 600) is None
    assert ring.authenticate(b"x" * 1_000_000) is None
    assert hashed == []
    assert ring.authenticate("k" * auth.MAX_KEY_BYTES) is None
    assert hashed == [auth.MAX_KEY_BYTES]  # at the cap it is still checked


@pytest.mark.parametrize("presented", [ALICE_KEY, CAROL_KEY, "no-such-key-0123456789"])
def test_every_stored_digest_is_compared_whether_or_not_one_matches(
    monkeypatch: pytest.MonkeyPatch, presented: str
) -> None:
    """No early exit: the first entry matching costs as many comparisons as none matching."""
    comparisons: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def counting_compare(a: bytes, b: bytes) -> bool:
        comparisons.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting_compare)
    ring = ApiKeyring.parse(SPEC)
    ring.authenticate(presented)
    assert len(comparisons) == 3
    assert all(len(a) == len(b) == 32 for a, b in comparisons)  # digests, never raw keys


def test_repr_shows_names_but_no_digest_or_key() -> None:
    text = repr(ApiKeyring.parse(SPEC))
    assert "alice" in text
    assert "carol" in text
    digests = [hashlib.sha256(k.encode()).hexdigest() for k in (ALICE_KEY, BOB_KEY)]
    for secret in (ALICE_KEY, BOB_KEY, CAROL_DIGEST, *digests):
        assert secret not in text


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        (" , ,", "empty"),
        ("alice", "entry 1 must look like name:key"),
        (":0123456789abcdef", "entry 1 must look like name:key"),
        ("alice:", "'alice' is empty"),
        ("alice:short", "shorter than 16"),
        ("al ice:0123456789abcdef", "entry 1: the name"),
        ("a/b:0123456789abcdef", "entry 1: the name"),
        ("ok:0123456789abcdef,évé:0123456789abcdef", "entry 2: the name"),
        ("alice:0123456789abcdef,alice:fedcba9876543210", "'alice' appears more than once"),
        ("alice:0123456789abcdef,bob:0123456789abcdef", "'bob' has the same key"),
        ("alice:sha256:abc", "64 hex digits"),
        ("alice:sha256:" + "g" * 64, "64 hex digits"),
        ("alice:sha256:" + "a" * 65, "64 hex digits"),
        ("alice:0123456789 abcdef", "visible ASCII"),
        ("alice:0123456789abcdéf", "visible ASCII"),
    ],
)
def test_bad_key_lists_are_one_sentence_without_the_key(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        ApiKeyring.parse(spec)
    text = str(info.value)
    assert "\n" not in text
    assert "0123456789abcdef" not in text
    assert "fedcba" not in text


def test_a_trailing_comma_is_harmless() -> None:
    assert ApiKeyring.parse(f"alice:{ALICE_KEY},").names == ("alice",)


def test_a_plaintext_key_may_contain_colons() -> None:
    ring = ApiKeyring.parse("svc:part1:part2:part3-0123")
    assert ring.authenticate("part1:part2:part3-0123") == Principal("svc", "api_key")


@pytest.mark.parametrize(
    ("value", "token"),
    [
        (b"Bearer abc", b"abc"),
        (b"bearer abc", b"abc"),
        (b"BEARER   abc  ", b"abc"),
        (b"Bearer", b""),
        (b"Bearer ", b""),
        (b"Basic YWxhZGRpbjpvcGVuc2VzYW1l", None),
        (b"Bearerabc", None),
    ],
)
def test_bearer_token_scheme_is_case_insensitive(value: bytes, token: bytes | None) -> None:
    assert bearer_token(value) == token


@pytest.mark.parametrize(
    ("api_keys", "authorizations", "expected"),
    [
        ([], [], auth.MISSING_KEY),
        ([b""], [], auth.MISSING_KEY),
        ([], [b"Bearer "], auth.MISSING_KEY),
        ([], [b"Basic dXNlcjpwdw=="], auth.MISSING_KEY),
        ([b"k1"], [], b"k1"),
        ([], [b"Bearer k1"], b"k1"),
        ([b"k1"], [b"Bearer k1"], b"k1"),
        ([b"k1"], [b"Basic dXNlcjpwdw=="], b"k1"),
        ([b"k1"], [b"Bearer k2"], auth.ONE_KEY_ONLY),
        ([b"k1", b"k1"], [], auth.ONE_KEY_ONLY),
        ([], [b"Bearer k1", b"Bearer k1"], auth.ONE_KEY_ONLY),
    ],
)
def test_one_key_in_one_header_is_chosen_or_the_reason_given(
    api_keys: list[bytes], authorizations: list[bytes], expected: bytes | str
) -> None:
    assert choose_key(api_keys, authorizations) == expected


# --- REST middleware --------------------------------------------------------------------


class RecordingApp:
    """Answers 200 and remembers the principal and headers it saw."""

    def __init__(self) -> None:
        self.principals: list[Principal | None] = []
        self.headers: list[list[tuple[bytes, bytes]]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.principals.append(current_principal())
        self.headers.append(list(scope["headers"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def request(
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    path: str = "/tell-joke",
    method: str = "POST",
    query: bytes = b"",
) -> tuple[Captured, RecordingApp]:
    app = RecordingApp()
    middleware = RequestIdMiddleware(
        ApiKeyMiddleware(app, ApiKeyring.parse(SPEC), exempt_paths=EXEMPT)
    )
    scope = http_scope(path, method, headers or [])
    scope["query_string"] = query
    return await call(middleware, scope), app


def assert_unauthenticated(sent: Captured, app: RecordingApp, detail: str) -> dict[str, Any]:
    assert sent.status == 401
    assert sent.headers[b"www-authenticate"] == WWW_AUTHENTICATE.encode()
    assert sent.headers[b"content-type"] == b"application/problem+json"
    body = json.loads(sent.body)
    assert body["status"] == 401
    assert body["detail"] == detail
    assert body["request_id"] == sent.headers[b"x-request-id"].decode()
    assert app.principals == []  # the app never ran
    return body


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-api-key", ALICE_KEY.encode())],
        [(b"authorization", f"Bearer {ALICE_KEY}".encode())],
        [(b"authorization", f"bearer {ALICE_KEY}".encode())],
        [(b"x-api-key", ALICE_KEY.encode()), (b"authorization", f"Bearer {ALICE_KEY}".encode())],
    ],
    ids=["x-api-key", "bearer", "bearer-lower-case", "both-same"],
)
async def test_valid_key_reaches_the_app_with_its_principal(
    headers: list[tuple[bytes, bytes]],
) -> None:
    sent, app = await request(headers)
    assert sent.status == 200
    assert app.principals == [Principal("alice", "api_key")]
    assert current_principal() is None  # reset after the request


async def test_hashed_key_reaches_the_app_as_its_name() -> None:
    sent, app = await request([(b"x-api-key", CAROL_KEY.encode())])
    assert sent.status == 200
    assert app.principals == [Principal("carol", "api_key")]


async def test_key_headers_are_not_handed_to_the_app() -> None:
    """The raw key cannot reach a framework request object, a prompt or a trace."""
    headers = [
        (b"x-api-key", ALICE_KEY.encode()),
        (b"authorization", f"Bearer {ALICE_KEY}".encode()),
        (b"content-type", b"application/json"),
    ]
    _, app = await request(headers)
    assert app.headers == [[(b"content-type", b"application/json")]]


async def test_missing_key_is_401_problem_with_www_authenticate() -> None:
    sent, app = await request([(b"content-type", b"application/json")])
    body = assert_unauthenticated(sent, app, auth.MISSING_KEY)
    assert body["instance"] == "/tell-joke"
    assert body["type"].endswith(":unauthenticated")


@pytest.mark.parametrize(
    "headers",
    [[(b"x-api-key", b"")], [(b"authorization", b"Bearer ")], [(b"authorization", b"Basic eA==")]],
    ids=["empty-x-api-key", "empty-bearer", "basic-scheme"],
)
async def test_empty_key_or_other_scheme_is_401_missing(
    headers: list[tuple[bytes, bytes]],
) -> None:
    sent, app = await request(headers)
    assert_unauthenticated(sent, app, auth.MISSING_KEY)


@pytest.mark.parametrize(
    "value",
    [
        b"wrong-key-0123456789",
        ALICE_KEY.encode() + b" x",
        b"k" * 513,
        b"k" * 1_048_576,
        b"\xff" * 20,
    ],
    ids=["wrong", "with-suffix", "just-over-cap", "1MiB", "non-ascii"],
)
async def test_wrong_or_oversized_key_is_401_invalid(value: bytes) -> None:
    sent, app = await request([(b"x-api-key", value)])
    assert_unauthenticated(sent, app, auth.INVALID_KEY)


async def test_wrong_key_detail_does_not_depend_on_which_names_exist() -> None:
    """A key shaped like another entry's name gets exactly the same answer."""
    first, _ = await request([(b"x-api-key", b"alice:not-the-key-0123")])
    second, _ = await request([(b"x-api-key", b"nobody:not-the-key-012")])
    assert json.loads(first.body)["detail"] == json.loads(second.body)["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-api-key", ALICE_KEY.encode()), (b"x-api-key", ALICE_KEY.encode())],
        [(b"x-api-key", ALICE_KEY.encode()), (b"x-api-key", BOB_KEY.encode())],
        [(b"authorization", f"Bearer {ALICE_KEY}".encode())] * 2,
        [(b"x-api-key", ALICE_KEY.encode()), (b"authorization", f"Bearer {BOB_KEY}".encode())],
        [
            (b"x-api-key", b"wrong-0123456789abc"),
            (b"authorization", f"Bearer {ALICE_KEY}".encode()),
        ],
    ],
    ids=["x-api-key-twice", "two-x-api-keys", "bearer-twice", "both-differ", "wrong-and-valid"],
)
async def test_duplicate_or_conflicting_key_headers_are_401(
    headers: list[tuple[bytes, bytes]],
) -> None:
    sent, app = await request(headers)
    assert_unauthenticated(sent, app, auth.ONE_KEY_ONLY)


@pytest.mark.parametrize(
    "query",
    [
        b"api_key=" + ALICE_KEY.encode(),
        b"stream=true&key=" + ALICE_KEY.encode(),
        b"APIKEY=x",
        b"token=x",
        b"access_token=x&stream=true",
        b"api_key",
    ],
)
async def test_key_in_query_string_is_401_even_with_a_valid_header(query: bytes) -> None:
    with structlog.testing.capture_logs() as logs:
        sent, app = await request([(b"x-api-key", ALICE_KEY.encode())], query=query)
    assert_unauthenticated(sent, app, auth.KEY_IN_URL)
    assert ALICE_KEY not in repr(logs)
    assert ALICE_KEY.encode() not in sent.body


async def test_unrelated_query_parameters_pass() -> None:
    query = b"stream=true&monkey=1&tokens=5"
    sent, app = await request([(b"x-api-key", ALICE_KEY.encode())], query=query)
    assert sent.status == 200
    assert app.principals == [Principal("alice", "api_key")]


@pytest.mark.parametrize("path", ["/health", "/ready"])
async def test_exempt_paths_pass_without_a_key(path: str) -> None:
    sent, app = await request(path=path, method="GET")
    assert sent.status == 200
    assert app.principals == [None]


async def test_exemption_is_by_exact_path_only() -> None:
    sent, app = await request(path="/health/../tell-joke", method="GET")
    assert_unauthenticated(sent, app, auth.MISSING_KEY)


async def test_options_preflight_passes_without_a_key() -> None:
    headers = [(b"origin", b"https://app.example"), (b"access-control-request-method", b"POST")]
    sent, app = await request(headers, method="OPTIONS")
    assert sent.status == 200
    assert app.principals == [None]


async def test_lifespan_passes_through_untouched() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    middleware = ApiKeyMiddleware(app, ApiKeyring.parse(SPEC), exempt_paths=EXEMPT)

    async def no_receive() -> dict[str, Any]:
        raise AssertionError("not called")

    async def no_send(message: Any) -> None:
        raise AssertionError("not called")

    await middleware({"type": "lifespan"}, no_receive, no_send)
    assert seen == ["lifespan"]


async def test_websocket_without_a_key_is_closed_before_accept() -> None:
    sent: list[Any] = []
    app = RecordingApp()

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    middleware = ApiKeyMiddleware(app, ApiKeyring.parse(SPEC), exempt_paths=EXEMPT)
    await middleware({"type": "websocket", "path": "/ws", "headers": []}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert app.principals == []


async def test_principal_is_reset_even_when_the_app_fails() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        assert current_principal() == Principal("bob", "api_key")
        raise RuntimeError("boom")

    middleware = ApiKeyMiddleware(failing, ApiKeyring.parse(SPEC), exempt_paths=EXEMPT)
    with pytest.raises(RuntimeError, match="boom"):
        await call(middleware, http_scope(headers=[(b"x-api-key", BOB_KEY.encode())]))
    assert current_principal() is None


# --- settings ---------------------------------------------------------------------------


def test_settings_parse_api_keys_into_a_keyring() -> None:
    settings = Settings(_env_file=None, api_keys=SPEC)  # type: ignore[call-arg]
    ring = settings.api_keyring()
    assert ring is not None
    assert ring.names == ("alice", "bob", "carol")
    assert ALICE_KEY not in repr(settings)
    assert Settings(_env_file=None).api_keyring() is None  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "value", ["", "alice:short-key", "alice", f"alice:{ALICE_KEY},alice:{BOB_KEY}"]
)
def test_bad_api_keys_stop_start_up_with_one_line_without_the_key(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Blank is refused too: an unexpanded secret must not silently turn auth off."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("API_KEYS", value)
    with pytest.raises(SystemExit) as info:
        parse_settings([], APP)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("endpoints-hello: error: invalid setting API_KEYS: ")
    assert err.count("\n") == 1
    for secret in ("short-key", ALICE_KEY, BOB_KEY):
        assert secret not in err
