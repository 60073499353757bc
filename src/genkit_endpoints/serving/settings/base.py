# SPDX-License-Identifier: Apache-2.0
"""The base of every settings group, and the field types groups share.

A value that appears in several places (a CIDR list, a Redis URL, a key prefix) is
declared here once with its one parser, so its spelling, default and error message
cannot drift apart between the settings that use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from genkit_endpoints.policies.backends import (
    DEFAULT_NAMESPACE,
    NAMESPACE_PATTERN,
    parse_backend,
)
from genkit_endpoints.security.addresses import parse_networks

__all__ = [
    "DEFAULT_NAMESPACE",
    "BackendUrl",
    "Cidrs",
    "CommaList",
    "Namespace",
    "OptionalPath",
    "OptionalText",
    "SettingsGroup",
    "secret",
]


def _split_commas(value: Any) -> Any:
    # Comma-separated in the environment (``a,b,c``), not JSON: easier to write in a
    # container spec, and no list entry ever needs a comma.
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _blank_is_unset(value: Any) -> Any:
    # ``MODEL=`` in an env file means "not chosen", not the empty model name.
    return None if isinstance(value, str) and not value.strip() else value


def _cidrs(value: list[str]) -> list[str]:
    parse_networks(value)  # the kit's one CIDR parser; its error names the entry
    return value


def _backend_url(value: SecretStr | None) -> SecretStr | None:
    if value is not None:
        parse_backend(value.get_secret_value())  # ValueError with the password redacted
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]
Cidrs = Annotated[CommaList, AfterValidator(_cidrs)]
OptionalText = Annotated[str | None, BeforeValidator(_blank_is_unset)]
OptionalPath = Annotated[Path | None, BeforeValidator(_blank_is_unset)]
BackendUrl = Annotated[SecretStr | None, AfterValidator(_backend_url)]

# One Redis key prefix rule for every feature (the configs check the same pattern).
Namespace = Annotated[str, Field(pattern=NAMESPACE_PATTERN)]


def secret(value: SecretStr | None) -> str | None:
    """The plain value of an optional secret (for the kit's config objects)."""
    return value.get_secret_value() if value is not None else None


class SettingsGroup(BaseSettings):
    """Base of every group, the kit's and an app's own: flat names, ``.env``, validated."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )
