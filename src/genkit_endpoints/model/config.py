# SPDX-License-Identifier: Apache-2.0
"""What the model layer takes: the provider choice, the offline model and the call policy.

Deliberately free of heavy imports (no Genkit): settings build these, and ``--help`` or a
bad flag must not pay for importing Genkit.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field


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
    """Deadlines and retry budget of one model call. Times in milliseconds.

    Immutable, so a copy is the same object: Genkit deep-copies a middleware's config for
    every call it makes, and there is nothing here to copy.
    """

    model_config = ConfigDict(frozen=True)

    timeout_ms: float = Field(default=60_000, gt=0)
    first_chunk_timeout_ms: float | None = Field(default=None, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    base_delay_ms: float = Field(default=500, ge=0)
    max_delay_ms: float = Field(default=10_000, ge=0)

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        return self


@dataclass(frozen=True)
class ProviderPoolConfig:
    """The connection pool each provider's HTTP client keeps for the life of the process.

    Counts are per provider and per process; times in seconds. Only connecting has a
    timeout of its own here: reading is bounded by the model call's deadline.
    """

    max_connections: int = 100
    # None: as many as ``max_connections``. Every connection that goes idle stays open
    # (until ``keepalive_expiry``), so a burst after a lull finds its connections ready
    # instead of paying a TCP and TLS handshake each; idle sockets cost next to nothing.
    # A lower cap also bites harder than it reads with httpcore 1.0 (under the Gemini
    # SDK's httpx): it counts busy connections against it too, closing every connection
    # that goes idle while more than the cap are open.
    max_keepalive_connections: int | None = None
    # Below the 60 s idle timeout common to load balancers and proxies in front of the
    # providers: the client closes an idle connection before the far side does, so a call
    # rarely picks a connection that is being closed under it.
    keepalive_expiry: float = 30.0
    connect_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {self.max_connections!r}")
        keep = self.max_keepalive_connections
        if keep is not None and not 0 <= keep <= self.max_connections:
            raise ValueError(
                f"max_keepalive_connections must be between 0 and max_connections "
                f"({self.max_connections}), got {keep!r}"
            )
        for name in ("keepalive_expiry", "connect_timeout"):
            if not getattr(self, name) > 0:  # also rejects NaN
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")

    @property
    def keepalive_connections(self) -> int:
        """``max_keepalive_connections`` resolved: idle connections kept open at most."""
        keep = self.max_keepalive_connections
        return self.max_connections if keep is None else keep


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
    pool: ProviderPoolConfig = field(default_factory=ProviderPoolConfig)


class ProviderConfigError(ValueError):
    """The model settings cannot work; the message names the setting to change."""


# Provider names as they prefix model names (``googleai/gemini-2.5-flash``).
GEMINI = "googleai"
OPENAI = "openai"
OFFLINE = "offline"
OFFLINE_MODEL = "offline/default"
DEFAULT_GEMINI_MODEL = "googleai/gemini-2.5-flash"
DEFAULT_OPENAI_MODEL = "openai/gpt-4o-mini"
# provider -> (the extra that installs its plugin, the plugin's module)
PROVIDER_PACKAGES = {GEMINI: ("gemini", "genkit_google_genai"), OPENAI: ("openai", "genkit_openai")}


def resolve_model(cfg: ProviderConfig) -> tuple[str, str]:
    """``(model, provider)`` for MODEL (or the default order: Gemini key, OpenAI key,
    offline), with every setting it needs checked and its provider's plugin installed —
    without importing Genkit or the plugin, so a supervisor whose workers build the
    service refuses bad model settings in one line and at once. ``ProviderConfigError``
    names what to change."""
    model = cfg.model
    if not model:
        if cfg.gemini_api_key:
            model = DEFAULT_GEMINI_MODEL
        elif cfg.openai_api_key:
            model = DEFAULT_OPENAI_MODEL
        else:
            model = OFFLINE_MODEL
    provider, _, name = model.partition("/")
    if not name:
        raise ProviderConfigError(f"MODEL={model!r} must look like 'provider/name'")
    if provider == OFFLINE:
        if model != OFFLINE_MODEL:
            raise ProviderConfigError(f"the offline provider has one model: {OFFLINE_MODEL}")
        return model, provider
    if provider not in PROVIDER_PACKAGES:
        raise ProviderConfigError(
            f"MODEL={model!r}: unknown provider {provider!r} "
            f"(use googleai/…, openai/… or {OFFLINE_MODEL})"
        )
    key, key_name = (
        (cfg.gemini_api_key, "GEMINI_API_KEY")
        if provider == GEMINI
        else (cfg.openai_api_key, "OPENAI_API_KEY")
    )
    if not key:
        raise ProviderConfigError(f"MODEL={model} needs {key_name}")
    extra, module = PROVIDER_PACKAGES[provider]
    if importlib.util.find_spec(module) is None:
        raise ProviderConfigError(
            f"the {provider} provider needs the '{extra}' extra: "
            f"pip install 'genkit-endpoints[{extra}]'"
        )
    return model, provider
