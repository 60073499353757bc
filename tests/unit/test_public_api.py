# SPDX-License-Identifier: Apache-2.0
"""The kit's public API: one documented list, importable cheaply.

That the sample, deploy/, bench/ and examples/ import nothing else is checked with the
import graph (``test_import_graph.py``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import genkit_endpoints

ROOT = Path(__file__).resolve().parents[2]


def test_all_lists_exactly_the_exported_names_and_each_resolves() -> None:
    assert sorted(genkit_endpoints.__all__) == sorted(genkit_endpoints._EXPORTS)
    for name in genkit_endpoints.__all__:
        assert getattr(genkit_endpoints, name) is not None, name


def test_importing_the_package_imports_neither_genkit_nor_a_server() -> None:
    code = (
        "import sys, genkit_endpoints; "
        "from genkit_endpoints import App, Settings, load_settings, serve; "
        "print(sorted(m for m in ('genkit', 'uvicorn', 'grpc', 'fastapi') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


# What a command line that only parses flags must not load: the model framework, the
# servers and web frameworks, and the libraries of the policies and the telemetry.
SERVING_ONLY = ("genkit", "fastapi", "litestar", "quart", "uvicorn", "granian", "hypercorn",
                "grpc", "structlog", "limits", "httpx", "redis", "prometheus_client",
                "opentelemetry", "sentry_sdk")  # fmt: skip


@pytest.mark.parametrize("argv", [["--help"], ["--port", "not-a-port"], ["--no-such-flag"]])
def test_help_and_bad_flags_load_nothing_of_the_serving_stack(argv: list[str]) -> None:
    """Start-up errors and ``--help`` answer at once: no Genkit, no server, no logging."""
    code = (
        "import sys\n"
        "from endpoints_hello.main import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {SERVING_ONLY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr[-2000:]


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        genkit_endpoints.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018


def test_the_gunicorn_config_leaves_prometheus_client_to_the_workers(tmp_path: Path) -> None:
    """gunicorn forks its workers from the master: a ``prometheus_client`` imported there
    before ``on_starting`` set the metrics directory would leave every worker counting
    on its own, and a scrape would see one worker's share."""
    code = (
        "import runpy, sys; "
        f"runpy.run_path({str(ROOT / 'deploy' / 'gunicorn.conf.py')!r}); "
        "print('prometheus_client' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.stdout.strip() == "False"
