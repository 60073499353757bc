# SPDX-License-Identifier: Apache-2.0
"""The kit's settings: one group per concern, composed by ``Settings``, built once.

Priority: CLI flags > environment > ``.<env>.env`` (``--env NAME``) > ``.env`` > defaults.

Why groups and no nesting delimiter: every group (``transport``, ``shared_state``,
``models``) is a ``BaseSettings`` of its own whose field names *are* the environment
variable names (``PORT``, ``REDIS_URL``, ``CB_MODE`` …), so the names operators already
use stay flat — no ``SERVER__PORT``. ``Settings`` builds each group from the same env
files (each group ignores the others' names) and routes flat keyword overrides to the
group that owns the name; a name in two groups is refused. Each group turns itself into
the kit's runtime config object; values that need another group (the bind address for
gRPC, the Redis defaults of a feature) are passed in here. Every value is validated at
start-up, and the errors of all groups are raised together, so a bad value is one clear
line, not a stack trace on the first request.

An app adds settings of its own as one more group (a ``SettingsGroup`` subclass named
in its ``App``); they are read, validated and exported to workers with the kit's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError
from pydantic_core import InitErrorDetails

from genkit_endpoints.grpc.config import GrpcConfig
from genkit_endpoints.http.middleware.policy import HttpPolicy
from genkit_endpoints.model.config import ModelCallPolicyConfig, ProviderConfig
from genkit_endpoints.policies.breaker import BreakerConfig
from genkit_endpoints.policies.cache import CacheConfig
from genkit_endpoints.policies.ratelimit import RateLimitConfig
from genkit_endpoints.security.image_config import ImageFetchConfig
from genkit_endpoints.security.keys import ApiKeyring
from genkit_endpoints.security.masking import api_key_secrets, secret_values
from genkit_endpoints.serving.config import ServerConfig
from genkit_endpoints.serving.settings.base import SettingsGroup
from genkit_endpoints.serving.settings.models import (
    ImageSettings,
    ModelCallSettings,
    ProviderSettings,
)
from genkit_endpoints.serving.settings.shared_state import (
    BreakerSettings,
    CacheSettings,
    RateLimitSettings,
    RedisSettings,
)
from genkit_endpoints.serving.settings.telemetry import TelemetrySettings
from genkit_endpoints.serving.settings.transport import (
    AuthSettings,
    GrpcSettings,
    HttpSettings,
    LoggingSettings,
    ServerSettings,
)
from genkit_endpoints.telemetry.config import TelemetryConfig

__all__ = ["Settings", "SettingsGroup", "load_settings", "one_line"]

G = TypeVar("G", bound=SettingsGroup)
# Not passing ``_env_file`` at all lets each group read its default ``.env``.
_DEFAULT_FILES: Any = object()

# Attribute name -> group class; the order is the order of error messages.
GROUPS: dict[str, type[SettingsGroup]] = {
    "server": ServerSettings,
    "http": HttpSettings,
    "auth": AuthSettings,
    "grpc": GrpcSettings,
    "redis": RedisSettings,
    "rate_limit": RateLimitSettings,
    "cache": CacheSettings,
    "breaker": BreakerSettings,
    "model_calls": ModelCallSettings,
    "providers": ProviderSettings,
    "images": ImageSettings,
    "logging": LoggingSettings,
    "telemetry": TelemetrySettings,
}


def _owners(groups: dict[str, type[SettingsGroup]]) -> dict[str, str]:
    owners: dict[str, str] = {}
    for attr, cls in groups.items():
        for name in cls.model_fields:
            if name in owners:  # two groups reading one variable would be a silent clash
                raise TypeError(f"setting {name!r} is in both {owners[name]!r} and {attr!r}")
            owners[name] = attr
    return owners


class Settings(BaseModel):
    """Every setting, grouped by concern; ``Settings(port=9000)`` still takes flat names.

    The ``*_config()`` methods turn the groups into the runtime objects the kit's
    factories take: the kit's building blocks never read settings or the environment.
    """

    model_config = ConfigDict(frozen=True)

    server: ServerSettings
    http: HttpSettings
    auth: AuthSettings
    grpc: GrpcSettings
    redis: RedisSettings
    rate_limit: RateLimitSettings
    cache: CacheSettings
    breaker: BreakerSettings
    model_calls: ModelCallSettings
    providers: ProviderSettings
    images: ImageSettings
    logging: LoggingSettings
    telemetry: TelemetrySettings
    # The app's own group (``App.settings``), if it has one.
    app: SettingsGroup | None = None

    def __init__(
        self,
        _env_file: Any = _DEFAULT_FILES,
        _app_group: type[SettingsGroup] | None = None,
        **values: Any,
    ) -> None:
        groups = dict(GROUPS)
        if _app_group is not None:
            groups["app"] = _app_group
        owners = _owners(groups)
        unknown = sorted(set(values) - set(owners) - set(groups))
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(unknown)}")
        built: dict[str, Any] = {}
        errors: list[InitErrorDetails] = []
        files = {} if _env_file is _DEFAULT_FILES else {"_env_file": _env_file}
        for attr, cls in groups.items():
            if isinstance(values.get(attr), SettingsGroup):  # a ready group
                built[attr] = values[attr]
                continue
            own = {k: v for k, v in values.items() if owners.get(k) == attr}
            try:
                built[attr] = cls(**files, **own)
            except ValidationError as exc:
                errors.extend(_details(exc))
        if errors:
            # All groups' errors in one exception, as one flat model would have raised.
            raise ValidationError.from_exception_data("Settings", errors)
        super().__init__(**built)

    @staticmethod
    def variable_names(app_group: type[SettingsGroup] | None = None) -> list[str]:
        """Every environment variable the settings read (upper case), for tools to scrub."""
        groups = [*GROUPS.values(), *([app_group] if app_group is not None else [])]
        return sorted(name.upper() for cls in groups for name in cls.model_fields)

    def group(self, cls: type[G]) -> G:
        """The app's own settings group, typed (``settings.group(MySettings).my_flag``)."""
        if not isinstance(self.app, cls):
            raise TypeError(f"no {cls.__name__} in these settings; name it in App(settings=…)")
        return self.app

    def groups(self) -> list[SettingsGroup]:
        found = [getattr(self, attr) for attr in GROUPS]
        return [*found, self.app] if self.app is not None else found

    # Views for the kit's factories.

    def server_config(self) -> ServerConfig:
        return self.server.config(self.logging.log_level)

    def http_policy(self) -> HttpPolicy:
        return self.http.policy(self.server.debug)

    def grpc_config(self) -> GrpcConfig:
        return self.grpc.config(
            host=self.server.host,
            max_receive_bytes=self.http.max_body_size,  # one body limit for REST and gRPC
            debug=self.server.debug,
        )

    def api_keyring(self) -> ApiKeyring | None:
        return self.auth.keyring()

    def rate_limit_config(self) -> RateLimitConfig | None:
        return self.rate_limit.config(self.redis)

    def cache_config(self) -> CacheConfig | None:
        return self.cache.config(self.redis)

    def breaker_config(self) -> BreakerConfig | None:
        return self.breaker.config(self.redis)

    def model_call_policy(self) -> ModelCallPolicyConfig:
        return self.model_calls.policy()

    def provider_config(self) -> ProviderConfig:
        return self.providers.config(timeout_ms=self.model_calls.llm_timeout)

    def image_fetch_config(self) -> ImageFetchConfig:
        return self.images.config()

    def telemetry_config(self, service_name: str) -> TelemetryConfig:
        return dataclasses.replace(
            self.telemetry.config(service_name), secrets=tuple(self.secrets())
        )

    def secrets(self) -> list[str]:
        """Every configured secret value, masked wherever it would be logged or exported."""
        return [
            *api_key_secrets(self.auth.api_keys),
            *secret_values(
                self.providers.gemini_api_key,
                self.providers.openai_api_key,
                self.telemetry.metrics_key,
                self.telemetry.sentry_dsn,
                self.telemetry.otel_exporter_otlp_headers,
            ),
        ]

    def log_format(self) -> str | None:
        """LOG_FORMAT as set (None: the logging module chooses by DEBUG and the terminal)."""
        return self.logging.log_format

    def to_environ(self) -> dict[str, str]:
        """Every setting as environment variables, for worker processes to rebuild from."""
        out: dict[str, str] = {}
        for group in self.groups():
            for name, value in group.model_dump().items():
                if value is None:
                    continue
                plain = value.get_secret_value() if isinstance(value, SecretStr) else value
                if isinstance(plain, list):
                    plain = ",".join(plain)
                out[name.upper()] = str(plain).lower() if isinstance(plain, bool) else str(plain)
        return out


def _details(exc: ValidationError) -> list[InitErrorDetails]:
    out: list[InitErrorDetails] = []
    for err in exc.errors(include_url=False):
        detail: InitErrorDetails = {"type": err["type"], "loc": err["loc"], "input": err["input"]}
        if "ctx" in err:
            detail["ctx"] = err["ctx"]
        out.append(detail)
    return out


def load_settings(
    env: str | None = None, *, app_group: type[SettingsGroup] | None = None, **overrides: Any
) -> Settings:
    """Settings from ``.env``, then ``.<env>.env``, then the environment, then overrides.

    ``None`` overrides are dropped (an absent CLI flag), so they never hide a variable.
    """
    files: tuple[Path, ...] = (Path(".env"),)
    if env:
        files = (*files, Path(f".{env}.env"))
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(files, app_group, **clean)


def one_line(exc: ValidationError) -> str:
    """A settings error as one line naming the variable (``invalid setting PORT: …``)."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    where = f"{loc.upper()}: " if loc else ""
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"invalid setting {where}{msg}{more}"
