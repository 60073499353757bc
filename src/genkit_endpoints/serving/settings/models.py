# SPDX-License-Identifier: Apache-2.0
"""Settings of the model side: call deadlines and retries, providers, image downloads."""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from genkit_endpoints.model.config import (
    ModelCallPolicyConfig,
    OfflineModelConfig,
    ProviderConfig,
    ProviderPoolConfig,
)
from genkit_endpoints.security.image_config import ImageFetchConfig
from genkit_endpoints.serving.settings.base import Cidrs, OptionalText, SettingsGroup, secret

__all__ = [
    "ImageSettings",
    "ModelCallSettings",
    "ProviderSettings",
]


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
    """Which model, the providers' keys and addresses, their connection pools, the
    offline model's pace."""

    model: OptionalText = Field(default=None, description="e.g. googleai/gemini-2.5-flash")
    gemini_api_key: SecretStr | None = None
    gemini_base_url: OptionalText = None
    openai_api_key: SecretStr | None = None
    openai_base_url: OptionalText = None
    offline_first_chunk_delay: float = Field(default=0, ge=0, le=600_000, description="ms")
    offline_chunk_delay: float = Field(default=0, ge=0, le=600_000, description="ms")
    provider_max_connections: int = Field(
        default=ProviderPoolConfig.max_connections,
        ge=1,
        le=10_000,
        description="Connections to the provider per process.",
    )
    provider_max_keepalive_connections: int | None = Field(
        default=None,
        ge=0,
        le=10_000,
        description="Idle connections kept open for reuse; unset: PROVIDER_MAX_CONNECTIONS; "
        "0: a new connection per call.",
    )
    provider_keepalive_expiry: float = Field(
        default=ProviderPoolConfig.keepalive_expiry,
        gt=0,
        le=3600,
        description="Seconds an idle connection stays open.",
    )
    provider_connect_timeout: float = Field(
        default=ProviderPoolConfig.connect_timeout,
        gt=0,
        le=300,
        description="Seconds to open a connection to the provider.",
    )

    @field_validator("provider_max_keepalive_connections")
    @classmethod
    def _keepalive_within_pool(cls, value: int | None, info: ValidationInfo) -> int | None:
        pool = info.data.get("provider_max_connections")  # absent if it failed itself
        if value is not None and pool is not None and value > pool:
            raise ValueError(f"must be at most PROVIDER_MAX_CONNECTIONS ({pool}), got {value}")
        return value

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
            pool=ProviderPoolConfig(
                max_connections=self.provider_max_connections,
                max_keepalive_connections=self.provider_max_keepalive_connections,
                keepalive_expiry=self.provider_keepalive_expiry,
                connect_timeout=self.provider_connect_timeout,
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
