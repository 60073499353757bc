# SPDX-License-Identifier: Apache-2.0
"""Settings precedence and validation, in-process."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import ValidationError

from endpoints_hello.app import APP
from genkit_endpoints import (
    App,
    HttpPolicy,
    ImageFetchConfig,
    RouteTable,
    Settings,
    SettingsGroup,
    load_settings,
)
from genkit_endpoints.model.config import ProviderPoolConfig
from genkit_endpoints.serving.cli import parse_settings
from genkit_endpoints.serving.settings import one_line


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("PORT", "LOG_LEVEL", "DEBUG", "MODEL", "REQUEST_TIMEOUT", "GEMINI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_defaults_need_no_configuration(in_tmp: Path) -> None:
    s = load_settings()
    assert (s.server.port, s.server.framework, s.server.server, s.server.debug) == (
        8080,
        "fastapi",
        "uvicorn",
        False,
    )
    assert s.server.keep_alive_timeout == 75
    assert s.providers.model is None


def test_precedence_cli_over_env_over_env_file_over_dotenv(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (in_tmp / ".env").write_text("PORT=1111\nLOG_LEVEL=error\nREQUEST_TIMEOUT=11\n")
    (in_tmp / ".staging.env").write_text("PORT=2222\nLOG_LEVEL=warning\n")
    assert load_settings().server.port == 1111
    s = load_settings("staging")
    assert (s.server.port, s.logging.log_level, s.http.request_timeout) == (2222, "warning", 11)
    monkeypatch.setenv("PORT", "3333")
    assert load_settings("staging").server.port == 3333
    assert load_settings("staging", port=4444).server.port == 4444
    assert parse_settings(["--env", "staging", "--port", "5555"], APP).server.port == 5555


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("PORT", "0"),
        ("PORT", "http"),
        ("LOG_LEVEL", "loud"),
        ("LLM_TIMEOUT", "-1"),
        ("REQUEST_TIMEOUT", "0"),
        ("BODY_READ_TIMEOUT", "0"),
        ("BODY_MIN_RATE", "-1"),
        ("SHUTDOWN_GRACE", "0"),
        ("LLM_MAX_RETRIES", "99"),
        ("FRAMEWORK", "django"),
        ("LOG_FORMAT", "xml"),
        ("OFFLINE_CHUNK_DELAY", "-5"),
        ("PROVIDER_MAX_CONNECTIONS", "0"),
        ("PROVIDER_MAX_KEEPALIVE_CONNECTIONS", "-1"),
        ("PROVIDER_KEEPALIVE_EXPIRY", "0"),
        ("PROVIDER_KEEPALIVE_EXPIRY", "nan"),
        ("PROVIDER_CONNECT_TIMEOUT", "0"),
        ("PROVIDER_CONNECT_TIMEOUT", "-2"),
        ("PROVIDER_CONNECT_TIMEOUT", "soon"),
    ],
)
def test_bad_values_are_rejected(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError):
        load_settings()


def test_log_level_is_case_insensitive(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    assert load_settings().logging.log_level == "warning"


def test_blank_model_means_automatic(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL", "  ")
    assert load_settings().providers.model is None


def test_secrets_are_not_in_the_settings_repr(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaSECRETSECRET")
    s = load_settings()
    assert "AIzaSECRETSECRET" not in repr(s)
    assert s.provider_config().gemini_api_key == "AIzaSECRETSECRET"


def test_views_carry_the_values_to_the_kit(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TIMEOUT", "1234")
    monkeypatch.setenv("LLM_FIRST_CHUNK_TIMEOUT", "321")
    monkeypatch.setenv("LLM_MAX_RETRIES", "4")
    monkeypatch.setenv("OFFLINE_FIRST_CHUNK_DELAY", "7")
    monkeypatch.setenv("KEEP_ALIVE_TIMEOUT", "30")
    monkeypatch.setenv("BODY_READ_TIMEOUT", "2.5")
    monkeypatch.setenv("BODY_MIN_RATE", "0")
    s = load_settings()
    policy = s.model_call_policy()
    assert (policy.timeout_ms, policy.first_chunk_timeout_ms, policy.max_retries) == (1234, 321, 4)
    assert s.provider_config().offline.first_chunk_delay_ms == 7
    assert s.provider_config().timeout_ms == 1234
    assert s.server_config().keep_alive == 30
    assert (s.http_policy().body_read_timeout, s.http_policy().body_min_rate) == (2.5, 0)


def test_provider_pool_settings_reach_the_provider_config(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = load_settings().provider_config().pool
    assert (pool.max_connections, pool.keepalive_connections) == (100, 100)
    assert (pool.keepalive_expiry, pool.connect_timeout) == (30, 5)
    monkeypatch.setenv("PROVIDER_MAX_CONNECTIONS", "16")
    monkeypatch.setenv("PROVIDER_MAX_KEEPALIVE_CONNECTIONS", "4")
    monkeypatch.setenv("PROVIDER_KEEPALIVE_EXPIRY", "12.5")
    monkeypatch.setenv("PROVIDER_CONNECT_TIMEOUT", "0.5")
    pool = load_settings().provider_config().pool
    assert (pool.max_connections, pool.keepalive_connections) == (16, 4)
    assert (pool.keepalive_expiry, pool.connect_timeout) == (12.5, 0.5)
    monkeypatch.delenv("PROVIDER_MAX_KEEPALIVE_CONNECTIONS")
    assert load_settings().provider_config().pool.keepalive_connections == 16  # follows the pool


def test_more_keep_alive_connections_than_the_pool_holds_is_refused(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVIDER_MAX_CONNECTIONS", "8")
    monkeypatch.setenv("PROVIDER_MAX_KEEPALIVE_CONNECTIONS", "9")
    with pytest.raises(ValidationError) as info:
        load_settings()
    assert one_line(info.value) == (
        "invalid setting PROVIDER_MAX_KEEPALIVE_CONNECTIONS: "
        "must be at most PROVIDER_MAX_CONNECTIONS (8), got 9"
    )


def test_a_bad_pool_setting_is_one_line_naming_it(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVIDER_CONNECT_TIMEOUT", "0")
    with pytest.raises(ValidationError) as info:
        load_settings()
    assert one_line(info.value).startswith("invalid setting PROVIDER_CONNECT_TIMEOUT: ")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_connections": 0}, "max_connections must be >= 1"),
        ({"max_connections": 4, "max_keepalive_connections": 5}, "between 0 and max_connections"),
        ({"max_keepalive_connections": -1}, "between 0 and max_connections"),
        ({"keepalive_expiry": 0}, "keepalive_expiry must be > 0"),
        ({"connect_timeout": float("nan")}, "connect_timeout must be > 0"),
    ],
)
def test_the_pool_config_refuses_what_cannot_work(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProviderPoolConfig(**fields)


def test_grpc_and_worker_settings_reach_the_kit(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRPC_PORT", "6000")
    monkeypatch.setenv("MAX_BODY_SIZE", "2048")
    monkeypatch.setenv("WORKERS", "3")
    monkeypatch.setenv("DEBUG", "true")
    s = load_settings()
    grpc = s.grpc_config()
    assert (grpc.port, grpc.max_receive_bytes, grpc.debug) == (6000, 2048, True)
    assert s.server_config().workers == 3
    assert parse_settings(["--no-grpc"], APP).grpc.grpc_enabled is False
    assert parse_settings([], APP).grpc.grpc_enabled is True


def test_settings_round_trip_through_the_environment_for_workers(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = load_settings(port=9999, gemini_api_key="AIza-x", debug=True, workers=2)
    for key, value in original.to_environ().items():
        monkeypatch.setenv(key, value)
    assert load_settings() == original


def test_every_variable_belongs_to_exactly_one_group() -> None:
    names = Settings.variable_names()
    assert len(names) == len(set(names))
    # The names operators and the docs use are still read, flat.
    assert {"PORT", "REDIS_URL", "API_KEYS", "CB_MODE", "LLM_TIMEOUT", "GRPC_TLS_CERT"} <= set(
        names
    )


def test_the_configuration_page_documents_every_variable() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    missing = [name for name in Settings.variable_names() if f"`{name}`" not in page]
    assert not missing, f"add these to the settings table of docs/configuration.md: {missing}"


def test_flat_keyword_overrides_reach_their_group(in_tmp: Path) -> None:
    s = Settings(None, port=9001, redis_url="redis://127.0.0.1:6399/0", cb_mode="adaptive")
    assert (s.server.port, s.breaker.cb_mode) == (9001, "adaptive")
    assert s.rate_limit_config() is not None
    with pytest.raises(TypeError, match="prot"):
        Settings(None, prot=9001)  # a typo is an error, not a silently ignored name


def test_errors_of_several_groups_are_reported_together(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", "0")
    monkeypatch.setenv("CB_MODE", "sometimes")
    with pytest.raises(ValidationError) as info:
        load_settings()
    assert {str(e["loc"][0]) for e in info.value.errors()} == {"port", "cb_mode"}
    assert one_line(info.value).startswith("invalid setting PORT: ")
    assert one_line(info.value).endswith("(and 1 more)")


@pytest.mark.parametrize("var", ["RATE_LIMIT_NAMESPACE", "CACHE_NAMESPACE", "CB_NAMESPACE"])
def test_every_namespace_follows_one_rule_with_one_default(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, var: str
) -> None:
    assert load_settings().to_environ()[var] == "genkit-endpoints"
    monkeypatch.setenv(var, "billing:v2")
    assert load_settings().to_environ()[var] == "billing:v2"
    monkeypatch.setenv(var, "two words")
    with pytest.raises(ValidationError, match=var.lower()):
        load_settings()


def test_one_cidr_parser_names_the_bad_entry_everywhere(in_tmp: Path) -> None:
    message = "not an IP network (CIDR): 'nope'"
    with pytest.raises(ValidationError, match=re.escape(message)):
        Settings(None, trusted_proxies="10.0.0.0/8, nope")
    with pytest.raises(ValueError, match=re.escape(message)):
        HttpPolicy(trusted_proxies=("10.0.0.0/8", "nope"))
    with pytest.raises(ValueError, match=re.escape(message)):
        ImageFetchConfig(allowed_networks=("nope",))
    # A blank entry (a trailing comma) is nothing, wherever the list comes from.
    assert HttpPolicy(trusted_proxies=("10.0.0.0/8", " ")).trusted_proxies[0] == "10.0.0.0/8"


class FlowSettings(SettingsGroup):
    greeting_style: Literal["plain", "pirate"] = "plain"


def test_an_app_group_is_read_validated_and_exported_with_the_kit_settings(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (in_tmp / ".env").write_text("GREETING_STYLE=pirate\n")
    app = App(name="styled", routes=lambda ctx: RouteTable([]), settings=FlowSettings)
    s = app.load_settings()
    assert s.group(FlowSettings).greeting_style == "pirate"
    assert s.to_environ()["GREETING_STYLE"] == "pirate"
    assert "GREETING_STYLE" in Settings.variable_names(FlowSettings)
    monkeypatch.setenv("GREETING_STYLE", "shouty")
    with pytest.raises(SystemExit):
        parse_settings([], app)
    with pytest.raises(TypeError, match="FlowSettings"):
        load_settings().group(FlowSettings)
