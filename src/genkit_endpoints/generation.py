"""How flows call models: one policy per model call, failures as typed errors, output validated.

Genkit 0.12 returns failed generations instead of raising (``response.error``), and does
not validate structured output against the requested schema. ``ModelClient`` closes both
gaps for every flow (SPEC §3.1), and puts ``ModelCallPolicy`` — a Genkit generate
middleware — on every call so each model request gets the deadline and retry rules of
SPEC §3.3, including the turns of a tool loop and Dotprompt calls. With a ``Breaker``,
every ``ModelClient`` call is one breaker decision (SPEC §4.5): refused before any upstream
request while open, and counted once however many retries or tool-loop turns it took —
the breaker judges calls as the client sees them, retries being the policy's business.
Invalid structured output counts as an upstream failure too.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import structlog
from genkit import Genkit, GenkitError, MiddlewareRef, ModelResponse, ModelResponseChunk
from genkit.middleware import BaseMiddleware, GenerateMiddlewareContext, ModelHookParams
from pydantic import BaseModel, ValidationError

from genkit_endpoints.breaker import Breaker
from genkit_endpoints.config import ModelCallPolicyConfig
from genkit_endpoints.errors import (
    EndpointError,
    InternalError,
    InvalidModelOutput,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)

T = TypeVar("T", bound=BaseModel)
_log = structlog.get_logger(__name__)
POLICY_MIDDLEWARE = "model-call-policy"

# Statuses worth another attempt: the provider was busy or briefly unreachable.
# DEADLINE_EXCEEDED is not here: LLM_TIMEOUT is a deadline for the whole call, so
# there is no budget left to retry a timed-out attempt with.
_TRANSIENT = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED", "ABORTED"})


class ModelCallPolicy(BaseMiddleware[ModelCallPolicyConfig]):
    """Deadline, time-to-first-chunk limit and bounded retries around each model request.

    ``genkit_middleware.Retry`` is not used: it retries after a stream has started
    (duplicating tokens the client already saw) and has no deadline.
    """

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
        while True:
            started = False
            downstream = ctx.on_chunk
            try:
                async with asyncio.timeout_at(deadline) as timer:
                    if downstream is not None:
                        if cfg.first_chunk_timeout_ms is not None:
                            timer.reschedule(
                                min(deadline, loop.time() + cfg.first_chunk_timeout_ms / 1000)
                            )

                        def on_chunk(
                            chunk: ModelResponseChunk, _t: Any = timer, _down: Any = downstream
                        ) -> None:
                            nonlocal started
                            if not started:
                                started = True
                                _t.reschedule(deadline)
                            _down(chunk)

                        ctx.replace_on_chunk(on_chunk)
                    return await next_fn(params, ctx)
            except TimeoutError:
                phase = "first chunk" if downstream is not None and not started else "answer"
                raise GenkitError(
                    status="DEADLINE_EXCEEDED", message=f"model call timed out waiting for {phase}"
                ) from None
            except GenkitError as exc:
                delay = self._retry_delay(exc, attempt, started, deadline - loop.time())
                if delay is None:
                    raise
                _log.warning(
                    "model_call_retry", attempt=attempt + 1, status=exc.status, delay_s=delay
                )
                await asyncio.sleep(delay)
                attempt += 1
            finally:
                if downstream is not None:
                    ctx.replace_on_chunk(downstream)

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


# Provider answers that refuse this request rather than signal an outage (4xx but 429).
_REJECTIONS = frozenset(
    {
        "INVALID_ARGUMENT",
        "FAILED_PRECONDITION",
        "OUT_OF_RANGE",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
    }
)


def error_from_genkit(
    status: str | None, message: str | None, reason: str | None = None
) -> EndpointError:
    """The client-facing error for a Genkit failure; the internal message is only logged."""
    _log.warning("model_call_failed", status=status, reason=reason, message=message)
    if reason == "INVALID_OUTPUT":
        return InvalidModelOutput()
    if status == "DEADLINE_EXCEEDED":
        return UpstreamTimeout()
    if status == "NOT_FOUND":
        return InternalError("The configured model is not available.")
    if status in _REJECTIONS:
        return UpstreamRejected()
    return UpstreamError()


def _unboxed(exc: Exception) -> EndpointError:
    """A failure Genkit raised instead of returning (unknown model, failed plugin init)."""
    if isinstance(exc, EndpointError):
        return exc
    if isinstance(exc, GenkitError):
        return error_from_genkit(exc.status, str(exc))
    # e.g. google-genai's ServerError from a failed first model listing (GENKIT.md)
    return error_from_genkit("UNAVAILABLE", f"{type(exc).__name__}: {exc}")


def raise_for_response(response: ModelResponse) -> None:
    """Raise the typed error for a failed generation (Genkit 0.12 does not raise)."""
    err = response.error
    if err is None and str(response.finish_reason or "") != "failed":
        return
    details = getattr(err, "details", None)
    reason = details.get("reason") if isinstance(details, Mapping) else None
    raise error_from_genkit(
        getattr(err, "status", None),
        getattr(err, "message", None) or response.finish_message,
        reason if isinstance(reason, str) else None,
    )


def validate_output(response: ModelResponse, schema: type[T]) -> T:
    """The response's structured output, validated against ``schema`` (SPEC §2.1)."""
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
        self, ai: Genkit, policy: ModelCallPolicyConfig, breaker: Breaker | None = None
    ) -> None:
        self.ai = ai
        self.policy = policy
        self.breaker = breaker
        # Registered once by name: an inline `use=[ModelCallPolicy(...)]` makes Genkit
        # register a new randomly named middleware on every call — slow, and the
        # registry grows with every request.
        if ai.registry.lookup_value("middleware", POLICY_MIDDLEWARE) is None:
            ai.define_middleware(ModelCallPolicy, name=POLICY_MIDDLEWARE)
        self._refs = [MiddlewareRef(name=POLICY_MIDDLEWARE, config=policy.model_dump(mode="json"))]

    def _use(self) -> list[MiddlewareRef]:
        return self._refs

    @contextlib.asynccontextmanager
    async def _guarded(self) -> AsyncIterator[None]:
        if self.breaker is None:
            yield
            return
        async with self.breaker.call():
            yield

    async def generate(self, **kwargs: Any) -> ModelResponse:
        """``ai.generate`` with the policy; raises a typed error instead of returning a failure."""
        async with self._guarded():
            return await self._generate(**kwargs)

    async def _generate(self, **kwargs: Any) -> ModelResponse:
        try:
            response = await self.ai.generate(use=self._use(), **kwargs)
        except Exception as exc:
            raise _unboxed(exc) from None
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
            return await self._stream(on_chunk, **kwargs)

    async def _stream(self, on_chunk: Callable[[str], None], **kwargs: Any) -> ModelResponse:
        sr = self.ai.generate_stream(use=self._use(), **kwargs)
        future: asyncio.Future[ModelResponse] = sr.response  # type: ignore[assignment]
        try:
            async for chunk in sr.stream:
                if chunk.text:
                    on_chunk(chunk.text)
            response = await future
        except Exception as exc:
            raise _unboxed(exc) from None
        finally:
            # generate_stream runs the model in a task of its own; a cancelled consumer
            # must take it down too, or tokens keep being generated for nobody (§2.2).
            if not future.done():
                future.cancel()
        raise_for_response(response)
        return response

    async def prompt(self, name: str, variables: Mapping[str, Any], schema: type[T]) -> T:
        """Run a Dotprompt file with the policy and validate its structured output."""
        executable = self.ai.prompt(name)
        async with self._guarded():
            try:
                response = await executable(dict(variables), use=self._use())
            except Exception as exc:
                raise _unboxed(exc) from None
            raise_for_response(response)
            return validate_output(response, schema)
