# SPDX-License-Identifier: Apache-2.0
"""The documented minimal app (examples/hello_min.py) really serves, as a script run by path."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.support.server import ServerProcess, run_server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello_min.py"
READY_TIMEOUT = 60.0


@contextlib.contextmanager
def run_example(tmp_path: Path, args: Sequence[str] = ()) -> Iterator[ServerProcess]:
    """``python examples/hello_min.py --port <free> --no-grpc``, run outside the repository
    (the script must not rely on it), until ``/health`` is 200."""
    with run_server(tmp_path, app=(str(EXAMPLE),), args=["--no-grpc", *args]) as server:
        yield server


def test_the_minimal_example_serves_its_flow(tmp_path: Path) -> None:
    with run_example(tmp_path) as server, server.client() as client:
        ok = client.post("/greet", json={"name": "Ada"})
        refused = client.post("/greet", json={"name": ""})
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["name"] == "Ada"
    assert "Ada" in body["text"]  # the offline model answers about the prompt's subject
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "name"


def test_worker_processes_load_a_script_app_by_its_path(tmp_path: Path) -> None:
    """Two granian workers: each imports the script by file (it is no importable module).

    granian, because it has no start-up health check: uvicorn's supervisor gives a
    spawned worker 5 s to answer, and a spawned child first re-runs the script (with its
    Genkit import) as ``__mp_main__`` — more than 5 s on a loaded test machine.
    """
    with run_example(tmp_path, ["--server", "granian", "--workers", "2"]) as server:
        deadline = time.monotonic() + READY_TIMEOUT
        while server.log_text().count('"using_offline_model"') < 2:
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.1)
        with server.client() as client:
            answers = [client.post("/greet", json={"name": "Bo"}) for _ in range(4)]
    assert [r.status_code for r in answers] == [200] * 4
    assert "Traceback" not in server.log_text()


def test_the_quick_start_shows_the_example_file_verbatim() -> None:
    page = (EXAMPLE.parents[1] / "docs" / "quickstart.md").read_text("utf-8")
    assert f"```python\n{EXAMPLE.read_text('utf-8')}```" in page
