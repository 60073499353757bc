# SPDX-License-Identifier: Apache-2.0
"""The Locust load test (``loadtest/locustfile.py``) against the real service.

Short headless runs: the valid mix must cover every kind of request it claims to send
with no failure, and the thresholds must turn a bad run into a non-zero exit code, which
is what a CI gate on a load test relies on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ServerProcess, free_port, run_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

LOCUSTFILE = Path(__file__).parents[2] / "loadtest" / "locustfile.py"
API_KEY = "load-test-key-0123456789"

# Every request name the valid mix sends (locust's stats key: method, name).
EXPECTED = {
    ("POST", "/tell-joke"),
    ("POST", "/translate"),
    ("POST", "/generate-character"),
    ("POST", "/chat"),
    ("POST", "/generate-code"),
    ("POST", "/review-code"),
    ("POST", "/flows/tell_joke"),
    ("POST", "/tell-joke/stream"),
    ("POST", "/tell-story/stream"),
    ("POST", "/flows/tell_story?stream=true"),
    ("POST", "/translate [repeated]"),
    ("POST", "/tell-joke [bad JSON]"),
    ("POST", "/tell-joke [schema]"),
    ("POST", "/generate-code [schema]"),
    ("POST", "/chat [not JSON]"),
    ("POST", "/no-such-flow [unknown route]"),
    ("grpc", "TellJoke"),
    ("grpc", "TranslateText"),
    ("grpc", "GenerateCharacter"),
    ("grpc", "TellStory"),
    ("grpc", "TellJokeStream"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"API_KEYS": f"load:{API_KEY}"}
    with run_server(tmp_path_factory.mktemp("loadtest"), env=env) as proc:
        yield proc


def run_locust(
    tmp_path: Path, host: str, seconds: int, args: Sequence[str] = (), **env: str
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """A headless run of the locustfile; its result and per-request-name stats."""
    stats = tmp_path / "stats"
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "-t",
        f"{seconds}s",
        "--stop-timeout",
        "5",
        "--json-file",
        str(stats),
        "--skip-log-setup",
        *args,
    ]
    scrubbed = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    result = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**scrubbed, **env},
        timeout=seconds + 60,
        check=False,
    )
    path = stats.with_suffix(".json")
    return result, json.loads(path.read_text()) if path.exists() else []


def test_valid_mix_covers_every_request_kind_without_failures(
    server: ServerProcess, tmp_path: Path
) -> None:
    result, stats = run_locust(
        tmp_path,
        server.base_url,
        8,
        ["-u", "4", "-r", "4", "--weights", "unary=7,stream=3,cached=2,invalid=5,grpc=5"],
        LOCUST_API_KEY=API_KEY,
        LOCUST_GRPC_TARGET=f"127.0.0.1:{server.grpc_port}",
        LOCUST_THINK_TIME="0.01,0.05",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = {(s["method"], s["name"]): s for s in stats}
    assert set(seen) == EXPECTED, result.stderr[-3000:]
    failed = {key: s["num_failures"] for key, s in seen.items() if s["num_failures"]}
    assert failed == {}, result.stderr[-3000:]
    assert all(s["num_requests"] > 0 for s in stats)


def test_failure_ratio_threshold_sets_the_exit_code(tmp_path: Path) -> None:
    """Nothing listens on the port: every request fails, so the run must exit 1."""
    result, stats = run_locust(
        tmp_path,
        f"http://127.0.0.1:{free_port()}",
        2,
        ["-u", "2", "-r", "2", "--max-fail-ratio", "0.5"],
        LOCUST_THINK_TIME="0.05,0.1",
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "threshold broken: failure ratio" in result.stderr
    assert sum(s["num_failures"] for s in stats) > 0


def test_p95_threshold_sets_the_exit_code(server: ServerProcess, tmp_path: Path) -> None:
    """A clean run whose p95 is above a limit no real request can meet still fails."""
    result, stats = run_locust(
        tmp_path,
        server.base_url,
        2,
        ["-u", "2", "-r", "2", "--max-p95-ms", "0.001", "--weights", "stream=0,invalid=0"],
        LOCUST_API_KEY=API_KEY,
        LOCUST_THINK_TIME="0.05,0.1",
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "threshold broken: p95" in result.stderr
    assert sum(s["num_failures"] for s in stats) == 0
