# SPDX-License-Identifier: Apache-2.0
"""How flows call models: one policy per model call, failures as typed errors, output validated.

Genkit 0.12 returns failed generations instead of raising (``response.error``), and does
not validate structured output against the requested schema. ``ModelClient`` closes both
gaps for every flow, and puts ``ModelCallPolicy`` — a Genkit generate middleware — on
every call so each model request gets one deadline and bounded retries, including the
turns of a tool loop and Dotprompt calls.

Which failures are the provider's is decided by ``genkit_endpoints.model.upstream``, inside the
policy, while the exception is still at hand: an error the provider answered with, a
timeout, a dropped or refused connection, or output that is not what was asked for
becomes a 502 (``UpstreamError``, ``UpstreamRejected``, ``InvalidModelOutput``) or a 504
(``UpstreamTimeout``). A programming error — in the flow's call, in a tool, in a model
plugin — is a plain 500 (``InternalError``, or the exception itself, which the route
turns into one), logged with its traceback.

With a ``Breaker``, every ``ModelClient`` call is one breaker decision: refused before
any upstream request while open, and counted once however many retries or tool-loop
turns it took — the breaker judges calls as the client sees them, retries being the
policy's business. Only the provider's failures count; a bug in one flow never opens
the breaker for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, ClassVar, NamedTuple, TypeVar

import structlog
from genkit import (
    Genkit,
    GenkitError,
    MiddlewareRef,
    ModelResponse,
    ModelResponseChunk,
    MultipartToolResponse,
)
from genkit.middleware import (
    BaseMiddleware,
    GenerateMiddlewareContext,
    ModelHookParams,
    ToolHookParams,
)
from pydantic import BaseModel, ValidationError

from genkit_endpoints.compat.genkit import PreparedGenerate, generate_with_callback
from genkit_endpoints.core.context import record_var
from genkit_endpoints.core.errors import InvalidModelOutput
from genkit_endpoints.model.config import ModelCallPolicyConfig
from genkit_endpoints.model.upstream import (
    is_interrupt,
    mark,
    model_call_failure,
    original,
    raise_for_response,
    typed_failures,
)
from genkit_endpoints.policies.breaker import Breaker
from genkit_endpoints.telemetry.observer import NO_OBSERVER, Observer

T = TypeVar("T", bound=BaseModel)
_log = structlog.get_logger(__name__)
POLICY_MIDDLEWARE = "model-call-policy"

# Statuses worth another attempt: the provider was busy or briefly unreachable.
# DEADLINE_EXCEEDED is not here: LLM_TIMEOUT is a deadline for the whole call, so
# there is no budget left to retry a timed-out attempt with.
_TRANSIENT = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED", "ABORTED"})
# Configs are few (one per client); a caller building one per request must not grow this.
_MAX_KEPT_CONFIGS = 64


class _CallerStopped(Exception):
    """Raised through Genkit when the stream's own consumer failed on a chunk."""


def _caused_by_caller(exc: BaseException) -> bool:
    """Whether ``exc`` carries a ``_CallerStopped``: Genkit wraps what a chunk callback
    raises (in its own error types, as ``cause`` or ``__cause__``) before the policy sees it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _CallerStopped):
            return True
        seen.add(id(current))
        cause = getattr(current, "cause", None)
        current = cause if isinstance(cause, BaseException) else current.__cause__
    return False


class _Observed(NamedTuple):
    observer: Observer
    model: str


# Set by ``ModelClient`` around each call: the middleware is built by Genkit from a JSON
# config, so the observer and the model's name reach it through the context instead.
_observed: ContextVar[_Observed | None] = ContextVar("model_call_observed", default=None)


def _report(
    observed: _Observed | None, started: float, error: BaseException | None, response: Any
) -> None:
    if observed is None:
        return
    observed.observer.model_call(
        observed.model,
        time.perf_counter() - started,
        None if error is None else _error_type(error),
    )
    usage = getattr(response, "usage", None)
    if usage is None:
        return
    inp, out = usage.input_tokens, usage.output_tokens
    observed.observer.model_tokens(observed.model, inp, out)
    record = record_var.get()
    if record is not None:
        record.model = observed.model or None  # "": a client built without a model name
        record.add_tokens(inp, out)


def _error_type(error: BaseException) -> str:
    if isinstance(error, GenkitError):
        return str(error.status)
    return type(error).__name__


class ModelCallPolicy(BaseMiddleware[ModelCallPolicyConfig]):
    """Deadline, time-to-first-chunk limit and bounded retries around each model request.

    Also where failures are told apart: the provider's leave marked (and may be retried),
    a model plugin's or a tool's own exception is logged with its traceback here — the
    only place that still has it — and passes on unmarked.

    ``genkit_middleware.Retry`` is not used: it retries after a stream has started
    (duplicating tokens the client already saw) and has no deadline.

    Genkit builds a fresh instance for every generate from the JSON config the client
    registered; the validated config for those same fields is kept, so a call does not
    validate the same settings again.
    """

    # Validated configs by their fields: one per distinct policy, a handful per process.
    _configs: ClassVar[dict[tuple[tuple[str, Any], ...], ModelCallPolicyConfig]] = {}

    def __init__(self, *, config: ModelCallPolicyConfig | None = None, **fields: Any) -> None:
        if config is None and fields:
            key = tuple(sorted(fields.items()))
            try:
                config = self._configs.get(key)
                keep = len(self._configs) < _MAX_KEPT_CONFIGS
            except TypeError:  # an unhashable value: let validation say what is wrong
                keep = False
            if config is None:
                config = ModelCallPolicyConfig(**fields)
                if keep:
                    self._configs[key] = config
            fields = {}
        super().__init__(config=config, **fields)

    async def wrap_model(
        self,
        params: ModelHookParams,
        ctx: GenerateMiddlewareContext,
        next_fn: Callable[[ModelHookParams, GenerateMiddlewareContext], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        cfg = self.config
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cfg.timeout_ms / 1000
        attempt = 0
        observed = _observed.get()
        while True:
            started = False
            downstream = ctx.on_chunk
            begun = time.perf_counter()
            try:
                async with asyncio.timeout_at(deadline) as timer:
                    if downstream is not None:
                        if cfg.first_chunk_timeout_ms is not None:
                            timer.reschedule(
                                min(deadline, loop.time() + cfg.first_chunk_timeout_ms / 1000)
                            )

                        def on_chunk(
                            chunk: ModelResponseChunk,
                            _t: Any = timer,
                            _down: Any = downstream,
                            _begun: float = begun,
                        ) -> None:
                            nonlocal started
                            if not started:
                                started = True
                                _t.reschedule(deadline)
                                if observed is not None:
                                    observed.observer.model_first_chunk(
                                        observed.model, time.perf_counter() - _begun
                                    )
                            _down(chunk)

                        ctx.replace_on_chunk(on_chunk)
                    response = await next_fn(params, ctx)
            except TimeoutError:
                phase = "first chunk" if downstream is not None and not started else "answer"
                timed_out = mark("DEADLINE_EXCEEDED", f"model call timed out waiting for {phase}")
                _report(observed, begun, timed_out, None)
                raise timed_out from None
            except Exception as exc:
                if _caused_by_caller(exc):
                    raise
                failure = model_call_failure(exc)
                _report(observed, begun, failure or exc, None)
                if failure is None:
                    _log.error("model_plugin_failed", exc_info=original(exc))
                    raise
                delay = self._retry_delay(failure, attempt, started, deadline - loop.time())
                if delay is None:
                    raise failure from exc
                _log.warning(
                    "model_call_retry", attempt=attempt + 1, status=failure.status, delay_s=delay
                )
                await asyncio.sleep(delay)
                attempt += 1
            else:
                _report(observed, begun, None, response)
                return response
            finally:
                if downstream is not None:
                    ctx.replace_on_chunk(downstream)

    async def wrap_tool(
        self,
        params: ToolHookParams,
        ctx: GenerateMiddlewareContext,
        next_fn: Callable[
            [ToolHookParams, GenerateMiddlewareContext], Awaitable[MultipartToolResponse]
        ],
    ) -> MultipartToolResponse:
        try:
            return await next_fn(params, ctx)
        except Exception as exc:
            # Genkit boxes a tool's failure without its traceback: log it while we have it.
            if not is_interrupt(exc):
                _log.error("tool_failed", tool=params.tool.name, exc_info=original(exc))
            raise

    def _retry_delay(
        self, exc: GenkitError, attempt: int, started: bool, remaining_s: float
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when it must not be retried."""
        cfg = self.config
        if started or attempt >= cfg.max_retries or exc.status not in _TRANSIENT:
            return None
        backoff_ms = min(cfg.max_delay_ms, cfg.base_delay_ms * 2**attempt)
        # Jitter (half to full backoff) spreads the retries of clients hit by one outage.
        delay_ms = random.uniform(backoff_ms / 2, backoff_ms)  # noqa: S311 - not crypto
        retry_after = (exc.response_metadata or {}).get("retry_after_ms")
        if isinstance(retry_after, int | float):
            if retry_after > cfg.max_delay_ms:
                return None  # the provider asked for longer than we are willing to wait
            delay_ms = max(delay_ms, float(retry_after))
        if delay_ms / 1000 >= remaining_s:
            return None
        return delay_ms / 1000


def validate_output(response: ModelResponse, schema: type[T]) -> T:
    """The response's structured output, validated against ``schema``."""
    output = response.output
    if output is None:
        raise InvalidModelOutput()
    try:
        if isinstance(output, BaseModel):
            output = output.model_dump(by_alias=True)
        return schema.model_validate(output)
    except ValidationError as exc:
        _log.warning("model_output_invalid", schema=schema.__name__, errors=exc.error_count())
        raise InvalidModelOutput() from None


class ModelClient:
    """The one way flows reach a model: policy on every call, typed failures."""

    def __init__(
        self,
        ai: Genkit,
        policy: ModelCallPolicyConfig,
        breaker: Breaker | None = None,
        *,
        observer: Observer = NO_OBSERVER,
        model: str = "",
    ) -> None:
        """``observer`` hears every model request (duration, first chunk, tokens),
        labelled with ``model``, the configured model's name (or a call's ``model=``)."""
        self.ai = ai
        self.policy = policy
        self.breaker = breaker
        self.observer = observer
        self.model = model
        # Built once: the usual call uses the configured model.
        self._observed = _Observed(observer, model)
        # Registered once by name: an inline `use=[ModelCallPolicy(...)]` makes Genkit
        # register a new randomly named middleware on every call — slow, and the
        # registry grows with every request.
        if ai.registry.lookup_value("middleware", POLICY_MIDDLEWARE) is None:
            ai.define_middleware(ModelCallPolicy, name=POLICY_MIDDLEWARE)
        self._refs = [MiddlewareRef(name=POLICY_MIDDLEWARE, config=policy.model_dump(mode="json"))]
        # Calls of literal parts skip re-folding the same options on every call.
        self._prepared = PreparedGenerate(ai, self._refs)

    def _use(self) -> list[MiddlewareRef]:
        return self._refs

    @contextlib.contextmanager
    def _observing(self, model: Any) -> Iterator[None]:
        # Without metrics the request's record (audit log) still wants the model and its
        # tokens; only with neither is there nothing to note.
        if self.observer is NO_OBSERVER and record_var.get() is None:
            yield
            return
        observed = self._observed
        if isinstance(model, str) and model and model != self.model:
            observed = _Observed(self.observer, model)  # a call's own model= label
        token = _observed.set(observed)
        try:
            yield
        finally:
            _observed.reset(token)

    @contextlib.asynccontextmanager
    async def _guarded(self) -> AsyncIterator[None]:
        if self.breaker is None:
            yield
            return
        async with self.breaker.call():
            yield

    async def generate(self, **kwargs: Any) -> ModelResponse:
        """``ai.generate`` with the policy; raises a typed error instead of returning a failure."""
        if self.breaker is None:  # the plain call, without a context manager per call
            return await self._generate(**kwargs)
        async with self.breaker.call():
            return await self._generate(**kwargs)

    async def _generate(self, **kwargs: Any) -> ModelResponse:
        with typed_failures(), self._observing(kwargs.get("model")):
            if PreparedGenerate.accepts(kwargs):
                response = await self._prepared.generate(**kwargs)
            else:
                response = await self.ai.generate(use=self._use(), **kwargs)
        raise_for_response(response)
        return response

    async def structured(self, schema: type[T], **kwargs: Any) -> T:
        """Generate structured output and validate it against ``schema``."""
        async with self._guarded():
            response = await self._generate(output_schema=schema, **kwargs)
            return validate_output(response, schema)

    async def stream(self, on_chunk: Callable[[str], None], **kwargs: Any) -> ModelResponse:
        """Stream text chunks to ``on_chunk``; the model call is cancelled if the caller is."""
        async with self._guarded():
            with self._observing(kwargs.get("model")):
                return await self._stream(on_chunk, **kwargs)

    async def _stream(self, on_chunk: Callable[[str], None], **kwargs: Any) -> ModelResponse:
        # Genkit's generate with a chunk callback, in this task: generate_stream would run
        # the same call in a task of its own behind a channel, one more task, queue and
        # wake-up per chunk for every open stream. Cancelling this task cancels the model.
        stopped: list[Exception] = []

        def forward(chunk: ModelResponseChunk) -> None:
            if text := chunk.text:
                try:
                    on_chunk(text)
                except Exception as exc:
                    # What the caller's callback raises (a client that hung up:
                    # ConnectionResetError) is not the provider failing: it stops the
                    # model call, passes the policy untouched and is raised as it is.
                    stopped.append(exc)
                    raise _CallerStopped from exc

        with typed_failures():
            if PreparedGenerate.accepts(kwargs):
                response = await self._prepared.generate(on_chunk=forward, **kwargs)
            else:
                response = await generate_with_callback(
                    self.ai, use=self._use(), on_chunk=forward, **kwargs
                )
        if stopped:  # Genkit boxed it into the response; the caller gets it back
            raise stopped[0]
        raise_for_response(response)
        return response

    async def prompt(self, name: str, variables: Mapping[str, Any], schema: type[T]) -> T:
        """Run a Dotprompt file with the policy and validate its structured output."""
        executable = self.ai.prompt(name)
        async with self._guarded():
            with typed_failures(), self._observing(None):
                response = await executable(dict(variables), use=self._use())
            raise_for_response(response)
            return validate_output(response, schema)
