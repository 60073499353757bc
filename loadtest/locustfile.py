"""Locust load test for a genkit-endpoints deployment (the sample app's API).

A REST user mixes four kinds of work, each with its own weight: unary flow calls with
inputs no earlier request used (so the flow cache cannot answer them), SSE streams read
frame by frame to their terminal frame, repeats of a few fixed ``/translate`` bodies (cache
hits after the first of each), and invalid requests, which count as successes only when
the status and the problem+json body are exactly what the contract promises. An
optional gRPC user calls the same flows through the sample's generated stubs. When the
run ends, the failure ratio and the p95 latency are compared with their thresholds and
the process exit code says whether they held, so a CI job can gate on it::

    locust -f loadtest/locustfile.py --headless -u 50 -r 10 -t 1m \\
        --host http://127.0.0.1:8080 --max-fail-ratio 0.01 --max-p95-ms 2000

Every option below can also be given as the environment variable in its help.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from locust import HttpUser, User, between, events, task
from locust.argument_parser import LocustArgumentParser
from locust.clients import ResponseContextManager
from locust.env import Environment
from locust.runners import WorkerRunner

logger = logging.getLogger("loadtest")

# Relative weights of the kinds of work; a weight of 0 leaves that kind out. "grpc"
# applies only when --grpc-target names a gRPC endpoint.
DEFAULT_WEIGHTS = {"unary": 6, "stream": 2, "cached": 3, "invalid": 1, "grpc": 2}
REST_KINDS = ("unary", "stream", "cached", "invalid")

# A few bodies repeated for the whole run: after the first call of each, every one is
# answered from the flow cache (unless CACHE_ENABLED=false on the server).
CACHED_TRANSLATIONS = (
    {"text": "The cat sat on the mat.", "target_language": "French"},
    {"text": "Where is the railway station?", "target_language": "German"},
    {"text": "Good morning, how are you today?", "target_language": "Spanish"},
)
NAMES = ("Mittens", "Ada", "Grace", "Linus", "Luna", "Alan")
LANGUAGES = ("French", "German", "Spanish", "Italian", "Japanese")
JSON = "application/json"
IMAGE_KEYS = ("description", "image_url")
PROBLEM_FIELDS = ("type", "title", "status", "detail", "instance", "request_id")
GRPC_DEADLINE_S = 60.0  # a model call's default deadline is 60 s; the server ends it first


def parse_weights(spec: str) -> dict[str, int]:
    """``"unary=6,stream=0"`` over the defaults; unknown kinds and bad numbers raise."""
    weights = dict(DEFAULT_WEIGHTS)
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kind, _, value = item.partition("=")
        if kind not in weights or not value.strip().isdigit():
            raise ValueError(f"bad weight {item!r}: want KIND=N, KIND one of {sorted(weights)}")
        weights[kind] = int(value)
    return weights


@events.init_command_line_parser.add_listener
def _add_options(parser: LocustArgumentParser, **_: Any) -> None:
    parser.add_argument(
        "--api-key",
        default="",
        env_var="LOCUST_API_KEY",
        is_secret=True,
        help="API key sent as X-API-Key (REST) and x-api-key metadata (gRPC).",
    )
    parser.add_argument(
        "--weights",
        default="",
        env_var="LOCUST_WEIGHTS",
        help="Relative weights, e.g. 'unary=6,stream=2,cached=3,invalid=1,grpc=2' (defaults).",
    )
    parser.add_argument(
        "--grpc-target",
        default="",
        env_var="LOCUST_GRPC_TARGET",
        help="host:port of the gRPC endpoint; set, gRPC users join the mix.",
    )
    parser.add_argument(
        "--grpc-tls",
        action="store_true",
        default=False,
        env_var="LOCUST_GRPC_TLS",
        help="Call gRPC over TLS (system roots) instead of plaintext.",
    )
    parser.add_argument(
        "--image-url",
        default="",
        env_var="LOCUST_IMAGE_URL",
        help="An image the deployment may fetch; set, /describe-image joins the unary calls.",
    )
    parser.add_argument(
        "--think-time",
        default="0.1,1.0",
        env_var="LOCUST_THINK_TIME",
        help="Seconds each user waits between requests: MIN,MAX (default 0.1,1.0).",
    )
    parser.add_argument(
        "--max-fail-ratio",
        type=float,
        default=0.01,
        env_var="LOCUST_MAX_FAIL_RATIO",
        help="Exit code 1 when more than this share of requests failed (default 0.01).",
    )
    parser.add_argument(
        "--max-p95-ms",
        type=float,
        default=0.0,
        env_var="LOCUST_MAX_P95_MS",
        help="Exit code 1 when the p95 over all requests exceeds this many ms (0: no limit).",
    )


@events.init.add_listener
def _configure(environment: Environment, **_: Any) -> None:
    """Turn the options into task and user weights before any user starts."""
    options = environment.parsed_options
    if options is None:  # run as a library without a command line: keep the defaults
        return
    weights = parse_weights(options.weights)
    _weigh_rest_tasks(weights)
    if options.image_url:
        describe = ("/describe-image", lambda: {"image_url": options.image_url}, IMAGE_KEYS)
        RestUser.unary_calls = [*UNARY, describe]
    low, _, high = options.think_time.partition(",")
    RestUser.wait_time = GrpcUser.wait_time = between(float(low), float(high or low))
    GrpcUser.weight = weights["grpc"] if options.grpc_target else 0
    if GrpcUser.weight:
        # gRPC's own threads would block locust's gevent loop; this makes them cooperate.
        from grpc.experimental import gevent as grpc_gevent

        grpc_gevent.init_gevent()
    environment.user_classes[:] = [u for u in environment.user_classes if u.weight > 0]
    if not environment.user_classes:
        raise ValueError("every weight is 0: nothing to run")


@events.quitting.add_listener
def _apply_thresholds(environment: Environment, **_: Any) -> None:
    """Set the exit code from the thresholds (on the master or a standalone run)."""
    options = environment.parsed_options
    if options is None or isinstance(environment.runner, WorkerRunner):
        return
    total = environment.stats.total
    broken: list[str] = []
    if total.num_requests == 0:
        broken.append("no request was made")
    if total.fail_ratio > options.max_fail_ratio:
        broken.append(f"failure ratio {total.fail_ratio:.4f} > {options.max_fail_ratio}")
    p95 = total.get_response_time_percentile(0.95) or 0.0
    if options.max_p95_ms and p95 > options.max_p95_ms:
        broken.append(f"p95 {p95:.0f} ms > {options.max_p95_ms:.0f} ms")
    for reason in broken:
        logger.error("threshold broken: %s", reason)
    if broken:
        environment.process_exit_code = 1
    elif environment.runner is not None and not environment.runner.exceptions:
        # Failures within the allowed ratio pass; errors in this file still fail.
        environment.process_exit_code = 0


def _unique(text: str) -> str:
    """``text`` with a suffix no other request carries, so the cache cannot answer it."""
    return f"{text} (#{uuid.uuid4().hex[:12]})"


_rotations: dict[str, Iterator[Any]] = {}


def _next(kind: str, items: Sequence[Any]) -> Any:
    """The next of ``items`` in turn, from a random start. One rotation per kind for all
    users of the process, so together they cover every item even in a short run (users
    are greenlets switching only on I/O: no lock is needed)."""
    if kind not in _rotations:
        start = random.randrange(len(items))
        _rotations[kind] = itertools.cycle([*items[start:], *items[:start]])
    return next(_rotations[kind])


Body = Callable[[], dict[str, Any]]

# (path, body factory, keys the answer must have)
UNARY: list[tuple[str, Body, tuple[str, ...]]] = [
    ("/tell-joke", lambda: {"name": random.choice(NAMES)}, ("joke", "username")),
    (
        "/translate",
        lambda: {"text": _unique("A short note to translate"), "target_language": "French"},
        ("original_text", "translated_text", "target_language", "confidence"),
    ),
    (
        "/generate-character",
        lambda: {"name": _unique(random.choice(NAMES))},
        ("name", "backStory", "abilities", "skills"),
    ),
    ("/chat", lambda: {"question": _unique("Where is the treasure?")}, ("answer", "persona")),
    (
        "/generate-code",
        lambda: {"description": _unique("a function that reverses a list"), "language": "python"},
        ("code", "language", "explanation", "filename"),
    ),
    (
        "/review-code",
        lambda: {"code": f"def f(x):\n    return x  # {uuid.uuid4().hex}", "language": "python"},
        ("summary", "issues", "score", "language"),
    ),
    ("/flows/tell_joke", lambda: {"data": {"name": random.choice(NAMES)}}, ("result",)),
]

# (path, body, the terminal frame's text key): "done" frames on the sample's routes,
# "result" frames on the Genkit callable protocol.
STREAMS: list[tuple[str, dict[str, Any], str]] = [
    ("/tell-joke/stream", {"name": "Mittens"}, "joke"),
    ("/tell-story/stream", {"topic": "a lighthouse keeper"}, "story"),
    ("/flows/tell_story?stream=true", {"data": {"topic": "a lighthouse keeper"}}, "result"),
]

# (name in the stats, path, raw body, content type, expected status, field the
# problem's "errors" must name, or None when the problem has no "errors")
INVALID: list[tuple[str, str, bytes, str, int, str | None]] = [
    ("bad JSON", "/tell-joke", b'{"name":', JSON, 422, "body"),
    ("schema", "/tell-joke", json.dumps({"name": "x" * 201}).encode(), JSON, 422, "name"),
    ("schema", "/generate-code", b'{"language": "not a language!"}', JSON, 422, "language"),
    ("not JSON", "/chat", b"what is the best language?", "text/plain", 415, None),
    ("unknown route", "/no-such-flow", b"{}", JSON, 404, None),
]


def problem_mismatch(resp: Any, status: int, field: str | None) -> str | None:
    """Why ``resp`` is not the problem+json answer promised, or None when it is."""
    if resp.status_code != status:
        return f"status {resp.status_code}, want {status}"
    if not resp.headers.get("content-type", "").startswith("application/problem+json"):
        return f"content-type {resp.headers.get('content-type')!r}"
    try:
        problem = resp.json()
    except ValueError:
        return "body is not JSON"
    missing = [key for key in PROBLEM_FIELDS if key not in problem]
    if missing or problem["status"] != status:
        return f"problem body {problem!r}"
    if problem["request_id"] != resp.headers.get("x-request-id"):
        return "request_id differs from X-Request-ID"
    if field is not None and field not in {e.get("field") for e in problem.get("errors", [])}:
        return f"errors do not name {field!r}: {problem.get('errors')!r}"
    return None


def read_sse(lines: Iterator[bytes]) -> Iterator[tuple[str, Any]]:
    """(event, parsed data) per SSE frame; comment lines are skipped."""
    event, data = "message", list[str]()
    for raw in lines:
        line = raw.decode()
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", list[str]()
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield event, json.loads("\n".join(data))


class RestUser(HttpUser):
    """One client of the REST API; tasks and weight come from --weights."""

    wait_time = between(0.1, 1.0)
    unary_calls = UNARY

    def on_start(self) -> None:
        key = self.environment.parsed_options.api_key if self.environment.parsed_options else ""
        self.client.headers["content-type"] = "application/json"
        if key:
            self.client.headers["x-api-key"] = key

    def _expect_json(self, resp: ResponseContextManager, keys: tuple[str, ...]) -> None:
        if resp.status_code != 200:
            resp.failure(f"status {resp.status_code}: {resp.text[:200]}")
            return
        try:
            answer = resp.json()
        except ValueError:
            resp.failure("answer is not JSON")
            return
        if missing := [k for k in keys if k not in answer]:
            resp.failure(f"answer lacks {missing}")

    def unary(self) -> None:
        path, body, keys = _next("unary", self.unary_calls)
        with self.client.post(path, json=body(), catch_response=True) as resp:
            self._expect_json(resp, keys)

    def cached(self) -> None:
        body = _next("cached", CACHED_TRANSLATIONS)
        with self.client.post(
            "/translate", json=body, name="/translate [repeated]", catch_response=True
        ) as resp:
            self._expect_json(resp, ("translated_text", "confidence"))

    def stream(self) -> None:
        path, body, key = _next("stream", STREAMS)
        started = time.perf_counter()
        headers = {"accept": "text/event-stream"}
        with self.client.post(
            path, json=body, headers=headers, stream=True, catch_response=True
        ) as resp:
            try:
                outcome, size = self._read_stream(resp, key)
            finally:
                resp.close()
            # Locust times a streamed request to its headers; the whole stream is
            # what a caller waits for.
            resp.request_meta["response_time"] = (time.perf_counter() - started) * 1000
            resp.request_meta["response_length"] = size
            if outcome:
                resp.failure(outcome)

    @staticmethod
    def _read_stream(resp: ResponseContextManager, key: str) -> tuple[str | None, int]:
        """Read frames to the terminal one: (why it failed or None, bytes read)."""
        if resp.status_code != 200:
            return f"status {resp.status_code}", 0
        if not resp.headers.get("content-type", "").startswith("text/event-stream"):
            return f"content-type {resp.headers.get('content-type')!r}", 0
        size, chunks = 0, list[str]()

        def counted() -> Iterator[bytes]:
            nonlocal size
            for line in resp.iter_lines():
                size += len(line) + 1
                yield line

        for event, data in read_sse(counted()):
            if event == "error" or "error" in data:
                return f"error frame: {data!r}", size
            if data.get("done") or "result" in data:
                final = data.get(key) if "done" in data else data["result"]
                if not chunks:
                    return "terminal frame without chunks", size
                if final != "".join(chunks):
                    return "terminal text differs from the chunks", size
                return None, size
            chunks.append(data.get("chunk", data.get("message", "")))
        return "stream ended without a terminal frame", size

    def invalid(self) -> None:
        what, path, body, content_type, status, field = _next("invalid", INVALID)
        with self.client.post(
            path,
            data=body,
            headers={"content-type": content_type},
            name=f"{path} [{what}]",
            catch_response=True,
        ) as resp:
            if why := problem_mismatch(resp, status, field):
                resp.failure(why)
            else:
                resp.success()


def _weigh_rest_tasks(weights: dict[str, int]) -> None:
    RestUser.weight = sum(weights[kind] for kind in REST_KINDS)
    RestUser.tasks = [getattr(RestUser, kind) for kind in REST_KINDS for _ in range(weights[kind])]


_weigh_rest_tasks(DEFAULT_WEIGHTS)


class GrpcUser(User):
    """One gRPC client of the sample's GenkitService; joins the mix with --grpc-target."""

    wait_time = between(0.1, 1.0)

    def on_start(self) -> None:
        import grpc

        from endpoints_hello.generated import genkit_sample_pb2 as pb
        from endpoints_hello.generated import genkit_sample_pb2_grpc as pb_grpc

        options = self.environment.parsed_options
        if options is None:
            raise ValueError("GrpcUser needs locust's command line (--grpc-target)")
        if options.grpc_tls:
            self._channel = grpc.secure_channel(options.grpc_target, grpc.ssl_channel_credentials())
        else:
            self._channel = grpc.insecure_channel(options.grpc_target)
        self._stub = pb_grpc.GenkitServiceStub(self._channel)
        self._metadata = (("x-api-key", options.api_key),) if options.api_key else ()
        self._grpc_error = grpc.RpcError
        # (method, request factory, the answer field that must not be empty; None for a
        # server stream, which must send at least one chunk). The same for every user:
        # all of them share one rotation over it (see _next).
        self._calls: list[tuple[str, Callable[[], Any], str | None]] = [
            ("TellJoke", lambda: pb.JokeRequest(name=random.choice(NAMES)), "joke"),
            (
                "TranslateText",
                lambda: pb.TranslateRequest(
                    text=_unique("A short note to translate"),
                    target_language=random.choice(LANGUAGES),
                ),
                "translated_text",
            ),
            ("GenerateCharacter", lambda: pb.CharacterRequest(name=_unique("Luna")), "back_story"),
            ("TellStory", lambda: pb.StoryRequest(topic="a lighthouse keeper"), None),
            ("TellJokeStream", lambda: pb.JokeRequest(name="Mittens"), None),
        ]

    def on_stop(self) -> None:
        self._channel.close()

    @task
    def call(self) -> None:
        method, request, field = _next("grpc", self._calls)
        started = time.perf_counter()
        size, error = 0, None
        try:
            rpc = getattr(self._stub, method)
            answer = rpc(request(), timeout=GRPC_DEADLINE_S, metadata=self._metadata)
            if field is None:
                texts = [chunk.text for chunk in answer]
                size = sum(len(t) for t in texts)
                if not texts:
                    error = ValueError("stream ended without a chunk")
            else:
                size = answer.ByteSize()
                if not getattr(answer, field):
                    error = ValueError(f"answer without {field}")
        except self._grpc_error as exc:
            error = exc
        self.environment.events.request.fire(
            request_type="grpc",
            name=method,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=size,
            exception=error,
            context={},
        )
