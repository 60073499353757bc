"""What the model layer takes: the provider choice, the offline model and the call policy.

Deliberately free of heavy imports (no Genkit): settings build these, and ``--help`` or a
bad flag must not pay for importing Genkit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field


@dataclass(frozen=True)
class OfflineModelConfig:
    """Simulated latency and chunking; all zero-cost by default."""

    first_chunk_delay_ms: float = 0
    chunk_delay_ms: float = 0
    words_per_chunk: int = 3

    def __post_init__(self) -> None:
        for name in ("first_chunk_delay_ms", "chunk_delay_ms"):
            if not getattr(self, name) >= 0:  # also rejects NaN
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.words_per_chunk < 1:
            raise ValueError(f"words_per_chunk must be >= 1, got {self.words_per_chunk!r}")


class ModelCallPolicyConfig(BaseModel):
    """Deadlines and retry budget of one model call. Times in milliseconds."""

    timeout_ms: float = Field(default=60_000, gt=0)
    first_chunk_timeout_ms: float | None = Field(default=None, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    base_delay_ms: float = Field(default=500, ge=0)
    max_delay_ms: float = Field(default=10_000, ge=0)


@dataclass(frozen=True)
class ProviderConfig:
    """What the app's settings say about models. Secrets are plain strings here."""

    model: str | None = None
    gemini_api_key: str | None = None
    gemini_base_url: str | None = None
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    timeout_ms: float = 60_000
    offline: OfflineModelConfig = field(default_factory=OfflineModelConfig)


class ProviderConfigError(ValueError):
    """The model settings cannot work; the message names the setting to change."""
