# SPDX-License-Identifier: Apache-2.0
"""Model provider selection: Gemini, OpenAI-compatible or the offline model.

The provider plugins are imported only when selected: ``genkit_google_genai`` alone
costs about a second and 70 MiB. An explicitly requested provider that cannot be set up
is a configuration error — the offline model is never used silently in its place.
Each provider's SDK is handed its connection pool (``ProviderPoolConfig``) through the
SDK's own options, so one pool of kept-alive connections serves every call.
"""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass
from typing import Any

import structlog
from genkit import Genkit
from genkit.plugin_api import Plugin

from genkit_endpoints.compat.genkit import forget_failed_plugin_inits, require_genkit
from genkit_endpoints.core.health import Readiness
from genkit_endpoints.model.config import (
    GEMINI,
    OFFLINE,
    OPENAI,
    PROVIDER_PACKAGES,
    ProviderConfig,
    resolve_model,
)
from genkit_endpoints.model.offline import OfflineModel

_SDK_TIMEOUT_MARGIN_MS = 1_000
MODEL_COMPONENT = "model"  # its name in the readiness report
_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ModelChoice:
    """The default model name and the plugins that serve it."""

    model: str
    provider: str
    plugins: tuple[Plugin, ...]

    @property
    def offline(self) -> bool:
        return self.provider == OFFLINE


def _gemini(cfg: ProviderConfig, model: str) -> ModelChoice:
    # Here, not at the top: httpx and the SDK are not paid for by --help or another provider.
    from genkit_endpoints.model.gemini_http import gemini_async_client_args  # noqa: PLC0415

    mod = importlib.import_module(PROVIDER_PACKAGES[GEMINI][1])
    # No SDK retries (ModelCallPolicy retries within one deadline), and the SDK timeout
    # a little past LLM_TIMEOUT so our deadline — one for the whole call, retries
    # included, and naming the phase it timed out in — is the one that fires.
    http_options: dict[str, Any] = {
        "timeout": int(cfg.timeout_ms + _SDK_TIMEOUT_MARGIN_MS),
        "async_client_args": gemini_async_client_args(cfg.pool),
    }
    plugin = mod.GoogleAI(
        api_key=cfg.gemini_api_key, base_url=cfg.gemini_base_url, http_options=http_options
    )
    return ModelChoice(model, GEMINI, (plugin,))


def _openai(cfg: ProviderConfig, model: str) -> ModelChoice:
    mod = importlib.import_module(PROVIDER_PACKAGES[OPENAI][1])
    # Imports openai, so only now that it is the provider.
    from genkit_endpoints.model.openai_http import (  # noqa: PLC0415
        openai_http_client,
        openai_timeout,
    )

    # The same margin past LLM_TIMEOUT as for Gemini, for reading; connecting has its own.
    timeout = openai_timeout((cfg.timeout_ms + _SDK_TIMEOUT_MARGIN_MS) / 1000, cfg.pool)
    params: dict[str, Any] = {
        "api_key": cfg.openai_api_key,
        "timeout": timeout,
        "max_retries": 0,  # the SDK default (2 retries, 600 s) would escape our deadline
        "http_client": openai_http_client(cfg.pool, timeout),
    }
    if cfg.openai_base_url:
        params["base_url"] = cfg.openai_base_url
    return ModelChoice(model, OPENAI, (mod.OpenAI(**params),))


def choose_model(cfg: ProviderConfig) -> ModelChoice:
    """The model MODEL names (or the default order: Gemini key, OpenAI key, offline) and
    its provider's plugin, ready for ``Genkit(plugins=...)``. The settings are checked by
    ``resolve_model`` first: ``ProviderConfigError`` names what to change.

    Raises ``UnsupportedDependency`` for a Genkit outside the range ``compat.genkit`` was
    checked against.
    """
    require_genkit()
    model, provider = resolve_model(cfg)
    if provider == GEMINI:
        return _gemini(cfg, model)
    if provider == OPENAI:
        return _openai(cfg, model)
    return ModelChoice(model, OFFLINE, (OfflineModel(cfg.offline),))


async def warm_up(ai: Genkit) -> bool:
    """Initialise every plugin now; True on success.

    The Gemini plugin lists models in its ``init``, and Genkit keeps the init task per
    event loop — a failed first listing would be re-raised on every later call for the
    life of the process. On failure the failed task is dropped (``compat.genkit``) so the
    next call (or the next warm-up attempt) runs the listing again.
    """
    try:
        await ai.registry.initialize_all_plugins()
    except Exception as exc:
        _log.warning("model_provider_warm_up_failed", error=type(exc).__name__)
        forget_failed_plugin_inits(ai)
        return False
    return True


class WarmUp:
    """Warms the plugins up at start-up, retrying with backoff until it works.

    It owns the readiness component ``model``: "failing" from construction until the
    provider answered once, then "ok" — the service reports not-ready meanwhile instead
    of failing the first user requests.
    """

    def __init__(
        self, ai: Genkit, readiness: Readiness, first_delay: float = 0.5, max_delay: float = 30.0
    ) -> None:
        self.ai = ai
        self.readiness = readiness
        self.first_delay = first_delay
        self.max_delay = max_delay
        require_genkit()  # the warm-up's retry reaches into Genkit's registry
        readiness.set_status(MODEL_COMPONENT, "failing")

    async def run(self) -> None:
        delay = self.first_delay
        while not await warm_up(self.ai):
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_delay)
        self.readiness.set_status(MODEL_COMPONENT, "ok")
