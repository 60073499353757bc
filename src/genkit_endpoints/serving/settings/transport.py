# SPDX-License-Identifier: Apache-2.0
"""Settings of the transports: the REST server, HTTP security, API keys, gRPC, logging.

Each group reads its own flat variable names (see ``genkit_endpoints.serving.settings``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from genkit_endpoints.grpc.config import GrpcConfig
from genkit_endpoints.http.middleware.policy import HttpPolicy
from genkit_endpoints.security.keys import ApiKeyring
from genkit_endpoints.serving.config import ServerConfig
from genkit_endpoints.serving.settings.base import Cidrs, CommaList, OptionalPath, SettingsGroup

Framework = Literal["fastapi", "litestar", "quart"]
Server = Literal["uvicorn", "granian", "hypercorn"]

__all__ = [
    "AuthSettings",
    "GrpcSettings",
    "HttpSettings",
    "LoggingSettings",
    "ServerSettings",
]


class ServerSettings(SettingsGroup):
    host: str = Field(default="0.0.0.0", description="Bind address.")  # noqa: S104
    port: int = Field(default=8080, ge=1, le=65535, description="REST port.")
    framework: Framework = "fastapi"
    server: Server = "uvicorn"
    workers: int = Field(default=1, ge=1, le=64, description="Server processes.")
    debug: bool = Field(default=False, description="Docs UI, console logs; never tracebacks.")
    keep_alive_timeout: float = Field(default=75, gt=0, le=3600, description="Seconds.")
    shutdown_grace: float = Field(default=25, ge=1, le=3600, description="Seconds to drain.")
    max_header_bytes: int = Field(
        default=16_384, ge=1024, le=1_048_576, description="Request line + headers, bytes."
    )
    max_header_count: int = Field(default=100, ge=10, le=10_000, description="Request headers.")
    header_read_timeout: float = Field(
        default=10, gt=0, le=600, description="Seconds to receive a request's headers."
    )

    def config(self, log_level: str) -> ServerConfig:
        return ServerConfig(
            host=self.host,
            port=self.port,
            keep_alive=self.keep_alive_timeout,
            shutdown_grace=self.shutdown_grace,
            log_level=log_level,
            workers=self.workers,
            max_header_bytes=self.max_header_bytes,
            max_header_count=self.max_header_count,
            header_read_timeout=self.header_read_timeout,
        )


class HttpSettings(SettingsGroup):
    """HTTP security: origins, hosts, proxies, body and time limits, response headers."""

    max_body_size: int = Field(
        default=1_048_576, ge=1_024, le=1_073_741_824, description="Bytes per request body."
    )
    body_read_timeout: float = Field(
        default=10, gt=0, le=600, description="Seconds to a request body's next part, else 408."
    )
    body_min_rate: int = Field(
        default=500, ge=0, le=1_073_741_824, description="Bytes/s a body must average; 0: off."
    )
    request_timeout: float = Field(
        default=120, gt=0, le=3600, description="Seconds until 504 if no response started."
    )
    cors_allowed_origins: CommaList = Field(
        default_factory=list, description="Origins allowed by CORS; empty: same origin only."
    )
    trusted_hosts: CommaList = Field(
        default_factory=list, description="Host header values accepted; empty: any."
    )
    trusted_proxies: Cidrs = Field(
        default_factory=list, description="CIDRs whose X-Forwarded-For/-Proto are believed."
    )
    hsts_max_age: int = Field(default=31_536_000, ge=0, le=63_072_000, description="Seconds.")
    gzip_min_size: int = Field(
        default=1024, ge=0, description="Bytes of JSON before gzip applies; 0 disables."
    )
    max_concurrent_requests: int = Field(
        default=1000, ge=1, le=1_000_000, description="In-flight requests per process before 503."
    )
    json_max_depth: int = Field(default=32, ge=2, le=1000, description="Nesting of JSON bodies.")

    def policy(self, debug: bool) -> HttpPolicy:
        return HttpPolicy(
            request_timeout=self.request_timeout,
            debug=debug,
            max_body_size=self.max_body_size,
            body_read_timeout=self.body_read_timeout,
            body_min_rate=self.body_min_rate,
            max_concurrent_requests=self.max_concurrent_requests,
            cors_allowed_origins=tuple(self.cors_allowed_origins),
            trusted_hosts=tuple(self.trusted_hosts),
            trusted_proxies=tuple(self.trusted_proxies),
            hsts_max_age=self.hsts_max_age,
            gzip_min_size=self.gzip_min_size,
            json_max_depth=self.json_max_depth,
        )


class AuthSettings(SettingsGroup):
    api_keys: SecretStr | None = Field(
        default=None, description="name:key or name:sha256:<hex>, comma-separated; unset: no auth."
    )

    @field_validator("api_keys")
    @classmethod
    def _api_keys(cls, value: SecretStr | None) -> SecretStr | None:
        # Set but blank is refused, not read as "off": an unexpanded secret must not
        # silently turn authentication off. The messages never contain a key.
        if value is not None:
            ApiKeyring.parse(value.get_secret_value())
        return value

    def keyring(self) -> ApiKeyring | None:
        """The parsed ``API_KEYS`` (None: authentication off)."""
        return None if self.api_keys is None else ApiKeyring.parse(self.api_keys.get_secret_value())


class GrpcSettings(SettingsGroup):
    grpc_enabled: bool = Field(default=True, description="Serve gRPC next to REST.")
    grpc_web_enabled: bool = Field(
        default=True, description="Serve gRPC-Web on the REST port (apps with a gRPC service)."
    )
    grpc_port: int = Field(default=50051, ge=0, le=65535, description="gRPC port (0: any).")
    grpc_tls_cert: OptionalPath = Field(default=None, description="PEM server certificate.")
    grpc_tls_key: OptionalPath = Field(default=None, description="PEM server private key.")
    grpc_tls_client_ca: OptionalPath = Field(
        default=None, description="PEM CA bundle; set: clients must present a certificate."
    )
    grpc_max_concurrent_rpcs: int = Field(
        default=1000, ge=1, le=1_000_000, description="In-flight RPCs per process."
    )
    grpc_max_metadata_size: int = Field(
        default=16_384, ge=1024, le=1_048_576, description="Bytes of request metadata."
    )

    @model_validator(mode="after")
    def _tls(self) -> GrpcSettings:
        # Missing, unreadable or mismatched TLS files: one line at start-up, not a failed
        # lifespan (or a failed handshake at the first call). The address and body limit
        # play no part in these checks, so placeholders stand in for the other groups.
        if self.grpc_enabled:
            cfg = self.config(host="127.0.0.1", max_receive_bytes=1, debug=False)
            if cfg.tls_cert is not None and cfg.tls_key is not None:
                from genkit_endpoints.grpc.tls import load_server_tls  # noqa: PLC0415

                load_server_tls(cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca)
        return self

    def config(self, *, host: str, max_receive_bytes: int, debug: bool) -> GrpcConfig:
        return GrpcConfig(
            host=host,
            port=self.grpc_port,
            max_receive_bytes=max_receive_bytes,
            debug=debug,
            max_concurrent_rpcs=self.grpc_max_concurrent_rpcs,
            max_metadata_size=self.grpc_max_metadata_size,
            tls_cert=self.grpc_tls_cert,
            tls_key=self.grpc_tls_key,
            tls_client_ca=self.grpc_tls_client_ca,
        )


class LoggingSettings(SettingsGroup):
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["json", "console"] | None = Field(
        default=None, description="Unset: console in DEBUG or on a terminal, else JSON."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value
