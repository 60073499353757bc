"""The settings, one group per concern, each read from its own flat variable names.

Every group is a ``BaseSettings`` of its own whose field names *are* the environment
variable names (``PORT``, ``REDIS_URL``, ``CB_MODE`` …): the names operators already
use stay exactly as they are, with no ``SERVER__PORT``-style delimiter. The root
``Settings`` builds each group with the same env files, so one ``.env`` holds them all
(each group ignores the other groups' names). Each group turns itself into the kit's
runtime config object; values that need another group (the bind address for gRPC, the
Redis defaults for a feature's own URL) are passed in by the root.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from genkit_endpoints.grpc.config import GrpcConfig
from genkit_endpoints.http.middleware.policy import HttpPolicy
from genkit_endpoints.model.config import ModelCallPolicyConfig, OfflineModelConfig, ProviderConfig
from genkit_endpoints.policies.backends import BackendSpec, RedisOptions, parse_backend
from genkit_endpoints.policies.breaker import BreakerConfig
from genkit_endpoints.policies.cache import CacheConfig
from genkit_endpoints.policies.ratelimit import RateLimitConfig, parse_rates
from genkit_endpoints.security.images import ImageFetchConfig
from genkit_endpoints.security.keys import ApiKeyring
from genkit_endpoints.serving.config import ServerConfig
from genkit_endpoints.serving.settings.fields import (
    DEFAULT_NAMESPACE,
    BackendUrl,
    Cidrs,
    CommaList,
    Namespace,
    OptionalPath,
    OptionalText,
    secret,
)

__all__ = [
    "AuthSettings",
    "BreakerSettings",
    "CacheSettings",
    "GrpcSettings",
    "HttpSettings",
    "ImageSettings",
    "LoggingSettings",
    "ModelCallSettings",
    "ProviderSettings",
    "RateLimitSettings",
    "RedisSettings",
    "ServerSettings",
    "SettingsGroup",
]

Framework = Literal["fastapi", "litestar", "quart"]
Server = Literal["uvicorn", "granian", "hypercorn"]


class SettingsGroup(BaseSettings):
    """Base of every group, the kit's and an app's own: flat names, ``.env``, validated."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )


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


class RedisSettings(SettingsGroup):
    """The Redis every shared-state feature uses unless it names its own."""

    redis_url: BackendUrl = Field(
        default=None, description="redis://, rediss:// or unix:// shared by every feature below."
    )
    redis_connect_timeout: int = Field(default=250, gt=0, le=60_000, description="ms")
    redis_socket_timeout: int = Field(default=250, gt=0, le=60_000, description="ms")
    redis_max_connections: int = Field(default=50, ge=1, le=10_000, description="pool size")

    def backend(self, own_url: SecretStr | None) -> BackendSpec:
        """A feature's backend: its own URL, else ``REDIS_URL``, else memory."""
        return parse_backend(secret(own_url or self.redis_url))

    def options(self) -> RedisOptions:
        return RedisOptions(
            connect_timeout_ms=self.redis_connect_timeout,
            socket_timeout_ms=self.redis_socket_timeout,
            max_connections=self.redis_max_connections,
        )


class RateLimitSettings(SettingsGroup):
    rate_limit_enabled: bool = Field(default=True, description="Per-client request limits.")
    rate_limit_default: str = Field(
        default="60/minute", description="Limits per principal or client IP; ';'-separated."
    )
    rate_limit_strategy: Literal["moving-window", "sliding-window-counter", "fixed-window"] = (
        "moving-window"
    )
    rate_limit_redis_url: BackendUrl = Field(
        default=None, description="Redis for rate limits; unset: REDIS_URL, else memory."
    )
    rate_limit_fail_open: bool = Field(
        default=True,
        description="Storage outage: count in each process at the same rates (true) or 503.",
    )
    rate_limit_namespace: Namespace = Field(
        default=DEFAULT_NAMESPACE,
        description="Redis key prefix of the counts, so services sharing a Redis stay apart.",
    )

    @field_validator("rate_limit_default")
    @classmethod
    def _rates(cls, value: str) -> str:
        parse_rates(value)  # "0/minute", "ten/minute": one clear line at start-up
        return value

    def config(self, redis: RedisSettings) -> RateLimitConfig | None:
        """Rate limits (None: off); counted in RATE_LIMIT_REDIS_URL, else REDIS_URL, else memory."""
        if not self.rate_limit_enabled:
            return None
        return RateLimitConfig(
            rates=self.rate_limit_default,
            strategy=self.rate_limit_strategy,
            backend=redis.backend(self.rate_limit_redis_url),
            redis=redis.options(),
            fail_open=self.rate_limit_fail_open,
            namespace=self.rate_limit_namespace,
        )


class CacheSettings(SettingsGroup):
    cache_enabled: bool = Field(default=True, description="Cache idempotent flows.")
    cache_ttl: int = Field(default=3600, ge=1, le=2_592_000, description="Seconds.")
    cache_max_size: int = Field(default=1024, ge=1, le=10_000_000, description="Entries (memory).")
    cache_scope: Literal["global", "principal"] = Field(
        default="global", description="principal: callers never share entries."
    )
    cache_redis_url: BackendUrl = Field(
        default=None, description="Redis for the cache; unset: REDIS_URL, else memory."
    )
    cache_namespace: Namespace = Field(
        default=DEFAULT_NAMESPACE, description="Redis key prefix of the cache."
    )
    cache_lock_timeout: float = Field(
        default=120, gt=0, le=3600, description="Seconds a single-flight lease lasts."
    )

    def config(self, redis: RedisSettings) -> CacheConfig | None:
        """The flow cache (None: off); in CACHE_REDIS_URL, else REDIS_URL, else memory."""
        if not self.cache_enabled:
            return None
        return CacheConfig(
            ttl=self.cache_ttl,
            max_entries=self.cache_max_size,
            scope=self.cache_scope,
            backend=redis.backend(self.cache_redis_url),
            redis=redis.options(),
            lock_timeout=self.cache_lock_timeout,
            namespace=self.cache_namespace,
        )


class BreakerSettings(SettingsGroup):
    cb_enabled: bool = Field(default=True, description="Circuit breaker around model calls.")
    cb_mode: Literal["consecutive", "adaptive"] = "consecutive"
    cb_failure_threshold: int = Field(default=5, ge=1, le=10_000)
    cb_failure_rate: float = Field(default=0.5, gt=0, le=1)
    cb_window: float = Field(default=60, gt=0, le=3600, description="Seconds (adaptive mode).")
    cb_min_calls: int = Field(default=10, ge=1, le=100_000)
    cb_recovery_timeout: float = Field(default=30, gt=0, le=3600, description="Seconds.")
    cb_half_open_max_calls: int = Field(default=1, ge=1, le=1000)
    cb_redis_url: BackendUrl = Field(
        default=None, description="Redis for shared breaker state; unset: REDIS_URL, else local."
    )
    cb_namespace: Namespace = Field(
        default=DEFAULT_NAMESPACE,
        description="Redis key prefix of the breaker state; replicas of one service share it.",
    )

    def config(self, redis: RedisSettings) -> BreakerConfig | None:
        """Model-call breaker (None: off); shared in CB_REDIS_URL, else REDIS_URL, else local."""
        if not self.cb_enabled:
            return None
        return BreakerConfig(
            mode=self.cb_mode,
            failure_threshold=self.cb_failure_threshold,
            failure_rate=self.cb_failure_rate,
            window=self.cb_window,
            min_calls=self.cb_min_calls,
            recovery_timeout=self.cb_recovery_timeout,
            half_open_max_calls=self.cb_half_open_max_calls,
            backend=redis.backend(self.cb_redis_url),
            redis=redis.options(),
            namespace=self.cb_namespace,
        )


class ModelCallSettings(SettingsGroup):
    """Deadlines and retries of every model call."""

    llm_timeout: int = Field(default=60_000, gt=0, le=3_600_000, description="ms per model call")
    llm_first_chunk_timeout: int | None = Field(
        default=None, gt=0, le=3_600_000, description="ms until a stream's first chunk"
    )
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    llm_retry_base_delay: int = Field(default=500, ge=0, le=60_000, description="ms")
    llm_retry_max_delay: int = Field(default=10_000, ge=0, le=600_000, description="ms")

    def policy(self) -> ModelCallPolicyConfig:
        return ModelCallPolicyConfig(
            timeout_ms=self.llm_timeout,
            first_chunk_timeout_ms=self.llm_first_chunk_timeout,
            max_retries=self.llm_max_retries,
            base_delay_ms=self.llm_retry_base_delay,
            max_delay_ms=self.llm_retry_max_delay,
        )


class ProviderSettings(SettingsGroup):
    """Which model, the providers' keys and addresses, the offline model's pace."""

    model: OptionalText = Field(default=None, description="e.g. googleai/gemini-2.5-flash")
    gemini_api_key: SecretStr | None = None
    gemini_base_url: OptionalText = None
    openai_api_key: SecretStr | None = None
    openai_base_url: OptionalText = None
    offline_first_chunk_delay: float = Field(default=0, ge=0, le=600_000, description="ms")
    offline_chunk_delay: float = Field(default=0, ge=0, le=600_000, description="ms")

    def config(self, timeout_ms: float) -> ProviderConfig:
        return ProviderConfig(
            model=self.model,
            gemini_api_key=secret(self.gemini_api_key),
            gemini_base_url=self.gemini_base_url,
            openai_api_key=secret(self.openai_api_key),
            openai_base_url=self.openai_base_url,
            timeout_ms=timeout_ms,
            offline=OfflineModelConfig(
                first_chunk_delay_ms=self.offline_first_chunk_delay,
                chunk_delay_ms=self.offline_chunk_delay,
            ),
        )


class ImageSettings(SettingsGroup):
    """The guarded download of user-supplied image URLs (``ImageFetcher``)."""

    max_image_bytes: int = Field(
        default=10_485_760, ge=1024, le=104_857_600, description="Image download cap."
    )
    image_fetch_timeout: float = Field(
        default=10, gt=0, le=120, description="Seconds for the whole image download."
    )
    image_fetch_allowed_networks: Cidrs = Field(
        default_factory=list,
        description="CIDRs exempt from the SSRF check (internal mirrors, tests); empty: none.",
    )

    def config(self) -> ImageFetchConfig:
        return ImageFetchConfig(
            max_bytes=self.max_image_bytes,
            timeout=self.image_fetch_timeout,
            connect_timeout=min(3.0, self.image_fetch_timeout),
            allowed_networks=tuple(self.image_fetch_allowed_networks),
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
