# SPDX-License-Identifier: Apache-2.0
"""One Redis key-prefix rule and one default for every shared-state feature, whether it
is configured by settings or built in code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from genkit_endpoints import load_settings
from genkit_endpoints.policies.breaker import BreakerConfig
from genkit_endpoints.policies.cache import CacheConfig
from genkit_endpoints.policies.ratelimit import RateLimitConfig

CONFIGS: dict[str, Callable[[str], Any]] = {
    "rate_limit": lambda ns: RateLimitConfig(namespace=ns),
    "cache": lambda ns: CacheConfig(namespace=ns),
    "cb": lambda ns: BreakerConfig(namespace=ns),
}
GOOD = ["a", "svc:prod", "team_1.api-v2", "x" * 64]
BAD = ["", "two words", "tab\there", "x" * 65, "caf\u00e9", "a/b", "a{b}"]


def test_every_feature_has_the_same_default_in_code_and_in_settings() -> None:
    settings = load_settings()
    code = {RateLimitConfig().namespace, CacheConfig().namespace, BreakerConfig().namespace}
    from_settings = {
        settings.rate_limit.rate_limit_namespace,
        settings.cache.cache_namespace,
        settings.breaker.cb_namespace,
    }
    assert len(code) == 1
    assert code == from_settings


@pytest.mark.parametrize("feature", sorted(CONFIGS))
@pytest.mark.parametrize("namespace", GOOD)
def test_a_valid_namespace_is_accepted_everywhere(feature: str, namespace: str) -> None:
    assert CONFIGS[feature](namespace).namespace == namespace
    settings = load_settings(**{f"{feature}_namespace": namespace})
    group = {"rate_limit": settings.rate_limit, "cache": settings.cache, "cb": settings.breaker}
    assert getattr(group[feature], f"{feature}_namespace") == namespace


@pytest.mark.parametrize("feature", sorted(CONFIGS))
@pytest.mark.parametrize("namespace", BAD)
def test_an_invalid_namespace_is_refused_everywhere(feature: str, namespace: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        CONFIGS[feature](namespace)
    with pytest.raises(ValidationError):
        load_settings(**{f"{feature}_namespace": namespace})
