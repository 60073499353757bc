# SPDX-License-Identifier: Apache-2.0
"""Settings of the shared-state features: Redis, rate limits, the flow cache, the breaker.

Each feature uses its own Redis URL if set, else ``REDIS_URL``, else memory; the client
limits are ``RedisSettings``' for all of them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from genkit_endpoints.policies.backends import BackendSpec, RedisOptions, parse_backend
from genkit_endpoints.policies.breaker import BreakerConfig
from genkit_endpoints.policies.cache import CacheConfig
from genkit_endpoints.policies.ratelimit import RateLimitConfig, parse_rates
from genkit_endpoints.serving.settings.base import (
    DEFAULT_NAMESPACE,
    BackendUrl,
    Namespace,
    SettingsGroup,
    secret,
)

__all__ = [
    "BreakerSettings",
    "CacheSettings",
    "RateLimitSettings",
    "RedisSettings",
]


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
