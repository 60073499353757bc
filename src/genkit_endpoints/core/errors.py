# SPDX-License-Identifier: Apache-2.0
"""The one error hierarchy: every failure a client can see, with its HTTP status and gRPC code.

Transports never invent statuses. Flows, policies and adapters raise these types; the
REST error envelope renders them as RFC 9457 ``application/problem+json`` and the gRPC
servicer maps ``grpc_code``. ``detail`` is always a sentence written for the client:
internal messages go to the log, never into a response.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import orjson

PROBLEM_CONTENT_TYPE = "application/problem+json"
_TYPE_PREFIX = "urn:genkit-endpoints:problem:"


class EndpointError(Exception):
    """Base of every error a client can receive. Subclasses set the class attributes."""

    status: ClassVar[int] = 500
    grpc_code: ClassVar[str] = "INTERNAL"  # a grpc.StatusCode name; the kit imports grpc lazily
    title: ClassVar[str] = "Internal Server Error"
    slug: ClassVar[str] = "internal"
    default_detail: ClassVar[str] = "The server could not complete the request."

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.errors = list(errors) if errors else None
        self.headers = dict(headers) if headers else {}
        super().__init__(self.detail)

    @property
    def type_uri(self) -> str:
        return _TYPE_PREFIX + self.slug

    def problem(self, *, instance: str, request_id: str | None) -> dict[str, Any]:
        """The RFC 9457 body, keys in a stable order on every framework."""
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            "request_id": request_id,
        }
        if self.errors:
            body["errors"] = self.errors
        return body

    def problem_bytes(self, *, instance: str, request_id: str | None) -> bytes:
        return orjson.dumps(self.problem(instance=instance, request_id=request_id))


class InvalidInput(EndpointError):
    status = 422
    grpc_code = "INVALID_ARGUMENT"
    title = "Unprocessable Content"
    slug = "invalid-input"
    default_detail = "The request body is not valid."


class ImageFetchError(EndpointError):
    """An image URL was refused or its image could not be fetched.

    422, not 502, even when the image server failed: the URL is the client's input, not
    an upstream of ours, and it must not count against the model provider's breaker.
    """

    status = 422
    grpc_code = "INVALID_ARGUMENT"
    title = "Unprocessable Content"
    slug = "image-fetch"
    default_detail = "The image URL could not be used."


class UnsupportedMediaType(EndpointError):
    status = 415
    grpc_code = "INVALID_ARGUMENT"
    title = "Unsupported Media Type"
    slug = "unsupported-media-type"
    default_detail = "The request body must be JSON (Content-Type: application/json)."


class BadRequest(EndpointError):
    status = 400
    grpc_code = "INVALID_ARGUMENT"
    title = "Bad Request"
    slug = "bad-request"
    default_detail = "The request could not be understood."


class Unauthenticated(EndpointError):
    status = 401
    grpc_code = "UNAUTHENTICATED"
    title = "Unauthorized"
    slug = "unauthenticated"
    default_detail = "A valid API key is required."


class Forbidden(EndpointError):
    status = 403
    grpc_code = "PERMISSION_DENIED"
    title = "Forbidden"
    slug = "forbidden"
    default_detail = "The request is not allowed."


class NotFound(EndpointError):
    status = 404
    grpc_code = "UNIMPLEMENTED"
    title = "Not Found"
    slug = "not-found"
    default_detail = "There is no such resource."


class MethodNotAllowed(EndpointError):
    status = 405
    grpc_code = "UNIMPLEMENTED"
    title = "Method Not Allowed"
    slug = "method-not-allowed"
    default_detail = "This method is not allowed on this resource."

    def __init__(self, allowed: Iterable[str], detail: str | None = None) -> None:
        allow = ", ".join(sorted(set(allowed)))
        super().__init__(detail, headers={"allow": allow})


class PayloadTooLarge(EndpointError):
    status = 413
    grpc_code = "RESOURCE_EXHAUSTED"
    title = "Content Too Large"
    slug = "payload-too-large"
    default_detail = "The request body is too large."


class ClientTooSlow(EndpointError):
    """The client did not send its request in time (a slow or stalled upload)."""

    status = 408
    grpc_code = "DEADLINE_EXCEEDED"
    title = "Request Timeout"
    slug = "client-timeout"
    default_detail = "The request was not received in time."


class RateLimited(EndpointError):
    status = 429
    grpc_code = "RESOURCE_EXHAUSTED"
    title = "Too Many Requests"
    slug = "rate-limited"
    default_detail = "Too many requests; retry later."


class ServiceUnavailable(EndpointError):
    status = 503
    grpc_code = "UNAVAILABLE"
    title = "Service Unavailable"
    slug = "unavailable"
    default_detail = "The service is temporarily unavailable; retry later."


class HeadersTooLarge(EndpointError):
    status = 431
    grpc_code = "RESOURCE_EXHAUSTED"
    title = "Request Header Fields Too Large"
    slug = "headers-too-large"
    default_detail = "The request headers are too large."


class UpstreamError(EndpointError):
    """The model provider failed (5xx, 429 after retries, connection error, refusal)."""

    status = 502
    grpc_code = "UNAVAILABLE"
    title = "Bad Gateway"
    slug = "upstream-error"
    default_detail = "The model provider failed to answer."


class UpstreamRejected(UpstreamError):
    """The provider refused this request (4xx other than 429: bad argument, permission).

    Still a 502 to the client, but not an outage: the circuit breaker does not count it
    (it counts only 5xx/429, timeouts, connection errors and invalid output).
    """


class InvalidModelOutput(UpstreamError):
    """The model answered, but not with what the output schema requires."""

    grpc_code = "INTERNAL"
    slug = "invalid-model-output"
    default_detail = "The model returned output that does not match the expected schema."


class UpstreamTimeout(EndpointError):
    status = 504
    grpc_code = "DEADLINE_EXCEEDED"
    title = "Gateway Timeout"
    slug = "timeout"
    default_detail = "The model did not answer in time."


class InternalError(EndpointError):
    """Anything unexpected. The detail is generic on purpose: it must leak nothing internal."""


def field_errors_from_pydantic(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Pydantic's error list, reduced to what a client needs: no echoed input, no URLs."""
    out: list[dict[str, str]] = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", ())]
        out.append(
            {
                "field": ".".join(loc) if loc else "body",
                "message": str(err.get("msg", "invalid value")),
                "type": str(err.get("type", "value_error")),
            }
        )
    return out
