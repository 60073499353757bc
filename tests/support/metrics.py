# SPDX-License-Identifier: Apache-2.0
"""Reading a server's ``/metrics`` and its access log the way an operator would."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

REQUEST_COUNT = "http_server_request_duration_seconds_count"
ACTIVE_REQUESTS = "http_server_active_requests"


def scrape(base_url: str, headers: Mapping[str, str] | None = None) -> list[Metric]:
    """One scrape of ``/metrics``, parsed (Prometheus text format)."""
    reply = httpx.get(base_url + "/metrics", headers=dict(headers or {}), timeout=10)
    assert reply.status_code == 200, reply.text
    return list(text_string_to_metric_families(reply.text))


def total(families: list[Metric], sample: str, **labels: str) -> float:
    """The sum of every ``sample`` series whose labels include ``labels``."""
    return sum(
        s.value
        for family in families
        for s in family.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


def series(families: list[Metric], sample: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every series of ``sample`` by its sorted labels."""
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in families
        for s in family.samples
        if s.name == sample
    }


def access_lines(log_text: str, route: str) -> int:
    """How many access-log lines name ``route`` (JSON log lines)."""
    count = 0
    for line in log_text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(event, dict)
            and event.get("logger") == "genkit_endpoints.access"
            and event.get("route") == route
        ):
            count += 1
    return count


def wait_for_access_lines(
    log_text: Callable[[], str], route: str, count: int, timeout: float = 10
) -> None:
    """Until ``count`` requests to ``route`` were logged.

    A request is counted in the metrics after its response went out and before its
    access line is written, so once the lines are there every count is in the files.
    """
    deadline = time.monotonic() + timeout
    while (seen := access_lines(log_text(), route)) < count:
        assert time.monotonic() < deadline, f"{seen} of {count} {route} requests logged"
        time.sleep(0.05)
    assert seen == count, f"{seen} {route} requests logged, {count} sent"
