# SPDX-License-Identifier: Apache-2.0
"""The command line and every setting that exists so far: each proven by its effect."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import app_env, free_port, run_cli, run_server


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("endpoints-hello: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--port", "abc"], {}, "--port"),
        (["--port", "70000"], {}, "PORT"),
        (["--framework", "flask"], {}, "FRAMEWORK"),
        (["--server", "nginx"], {}, "SERVER"),
        (["--workers", "0"], {}, "WORKERS"),
        (["--grpc-port", "-1"], {}, "GRPC_PORT"),
        (["--log-format", "xml"], {}, "LOG_FORMAT"),
        (["--log-level", "loud"], {}, "LOG_LEVEL"),
        (["--request-timeout", "-1"], {}, "REQUEST_TIMEOUT"),
        (["--env", "nowhere"], {}, ".nowhere.env"),
        (["--model", "openai/gpt-4o-mini"], {}, "OPENAI_API_KEY"),
        (["--model", "googleai/gemini-2.5-flash"], {}, "GEMINI_API_KEY"),
        (["--model", "nonsense"], {}, "provider/name"),
        (["--model", "acme/x"], {}, "unknown provider"),
        ([], {"LLM_TIMEOUT": "soon"}, "LLM_TIMEOUT"),
        ([], {"PORT": "-3"}, "PORT"),
        (["--audit-log", "/"], {}, "AUDIT_LOG"),  # a directory: nothing to append to
        (["--bogus"], {}, "--bogus"),
    ],
)
def test_bad_values_give_one_line_and_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], needle: str
) -> None:
    line = one_line_error(run_cli(args, env=env, cwd=tmp_path))
    assert needle in line


WITHOUT_REDIS = (
    "import sys; sys.modules['redis'] = None; "  # as if the extra were not installed
    "from endpoints_hello.main import main; sys.exit(main())"
)


@pytest.mark.parametrize(
    "env",
    [
        {"REDIS_URL": "redis://127.0.0.1:6399/0"},
        {"CACHE_REDIS_URL": "redis://127.0.0.1:6399/0", "RATE_LIMIT_ENABLED": "false"},
        {"CB_REDIS_URL": "redis://127.0.0.1:6399/0", "CACHE_ENABLED": "false"},
        {"REDIS_URL": "redis://127.0.0.1:6399/0", "WORKERS": "2"},
    ],
    ids=["all-features", "cache", "breaker", "workers"],
)
def test_a_redis_url_without_the_redis_extra_is_one_line(
    tmp_path: Path, env: dict[str, str]
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_REDIS, "--port", str(free_port()), "--no-grpc"],
        capture_output=True,
        text=True,
        env=app_env(env),
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    line = one_line_error(proc)
    assert "'redis' extra" in line
    assert "pip install 'genkit-endpoints[redis]'" in line


WITHOUT_SENTRY = (
    "import sys; sys.modules['sentry_sdk'] = None; "  # as if the extra were not installed
    "from endpoints_hello.main import main; sys.exit(main())"
)


def test_a_sentry_dsn_without_the_sentry_extra_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_SENTRY, "--port", str(free_port()), "--no-grpc"],
        capture_output=True,
        text=True,
        env=app_env({"SENTRY_DSN": "http://publickey@127.0.0.1:9/1"}),
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    line = one_line_error(proc)
    assert "'sentry' extra" in line
    assert "pip install 'genkit-endpoints[sentry]'" in line
    assert "publickey" not in proc.stderr


def test_help_lists_the_flags(tmp_path: Path) -> None:
    proc = run_cli(["--help"], cwd=tmp_path)
    assert proc.returncode == 0
    for flag in ("--port", "--framework", "--server", "--env", "--debug", "--log-format",
                 "--log-level", "--model", "--request-timeout", "--host"):  # fmt: skip
        assert flag in proc.stdout


def test_console_script_is_installed(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "endpoints-hello"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    assert "--port" in proc.stdout


def test_debug_serves_docs_and_openapi(tmp_path: Path) -> None:
    with run_server(tmp_path, args=["--debug"]) as server, server.client() as c:
        assert c.get("/docs").status_code == 200
        spec = c.get("/openapi.json").json()
    assert "/tell-joke" in spec["paths"]
    schema = spec["paths"]["/tell-joke"]["post"]["requestBody"]["content"]["application/json"]
    assert "name" in schema["schema"]["properties"]


def test_env_file_selected_with_env_flag_is_read(tmp_path: Path) -> None:
    (tmp_path / ".staging.env").write_text("DEBUG=true\n")
    with run_server(tmp_path, args=["--env", "staging"]) as server, server.client() as c:
        assert c.get("/docs").status_code == 200


def test_dotenv_is_read_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DEBUG=1\n")
    with run_server(tmp_path) as server, server.client() as c:
        assert c.get("/openapi.json").status_code == 200


def test_log_format_json_and_console(tmp_path: Path) -> None:
    with run_server(tmp_path, args=["--log-format", "json"]) as server:
        server.wait_for_log("using_offline_model")
        lines = [ln for ln in server.log_text().splitlines() if ln.strip()]
    assert all(isinstance(json.loads(ln), dict) for ln in lines)
    with run_server(tmp_path, env={"LOG_FORMAT": "console"}) as server:
        deadline = time.monotonic() + 10
        while "using_offline_model" not in server.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        text = server.log_text()
    assert "using_offline_model" in text
    with pytest.raises(ValueError):  # noqa: PT011
        json.loads(text.splitlines()[0])


def test_log_level_filters_our_events_and_library_records(tmp_path: Path) -> None:
    with run_server(tmp_path, args=["--log-level", "error"]) as server:
        httpx.get(server.base_url + "/health")
        quiet = server.log_events()
    assert not [e for e in quiet if e.get("level") in ("info", "warning")]
    with run_server(tmp_path, env={"LOG_LEVEL": "DEBUG"}) as server:
        server.wait_for_log("using_offline_model")
        loud = server.log_events()
    levels = {e.get("level") for e in loud}
    assert {"info", "warning"} <= levels
    assert any(e.get("logger", "").startswith("uvicorn") for e in loud)


def test_json_log_lines_carry_the_request_id(tmp_path: Path) -> None:
    env = {
        "OPENAI_API_KEY": "k",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "LLM_MAX_RETRIES": "0",
    }
    with run_server(tmp_path, env=env) as server, server.client() as c:
        r = c.post("/tell-joke", json={}, headers={"x-request-id": "rid-123"})
        assert r.status_code == 502
        time.sleep(0.3)
        events = [e for e in server.log_events() if e.get("request_id") == "rid-123"]
    assert events, server.log_text()[-2000:]


def test_request_timeout_flag_turns_slow_requests_into_504(tmp_path: Path) -> None:
    env = {"OFFLINE_FIRST_CHUNK_DELAY": "5000"}
    with run_server(tmp_path, args=["--request-timeout", "0.5"], env=env) as server:
        start = time.monotonic()
        r = httpx.post(server.base_url + "/tell-joke", json={}, timeout=10)
        elapsed = time.monotonic() - start
    assert r.status_code == 504
    assert r.headers["content-type"] == "application/problem+json"
    assert 0.4 < elapsed < 3


def test_offline_latency_settings_slow_the_model(tmp_path: Path) -> None:
    env = {"OFFLINE_FIRST_CHUNK_DELAY": "400", "OFFLINE_CHUNK_DELAY": "0"}
    with run_server(tmp_path, env=env) as server:
        start = time.monotonic()
        r = httpx.post(server.base_url + "/tell-joke", json={}, timeout=10)
        elapsed = time.monotonic() - start
    assert r.status_code == 200
    assert elapsed >= 0.38


def test_model_flag_forces_the_offline_model_over_a_provider_key(tmp_path: Path) -> None:
    env = {"GEMINI_API_KEY": "AIza-not-used"}
    with run_server(tmp_path, args=["--model", "offline/default"], env=env) as server:
        event = server.wait_for_log("using_offline_model")
        assert httpx.post(server.base_url + "/tell-joke", json={}).status_code == 200
    assert event["model"] == "offline/default"


def test_keep_alive_timeout_closes_idle_connections(tmp_path: Path) -> None:
    with run_server(tmp_path, env={"KEEP_ALIVE_TIMEOUT": "1"}) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while b'{"status":"ok"}' not in got:
                got += s.recv(4096)
            time.sleep(2)
            s.settimeout(3)
            assert s.recv(4096) == b""  # the server closed the idle connection
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while b'{"status":"ok"}' not in got:
                got += s.recv(4096)
            time.sleep(0.3)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"200 OK" in s.recv(4096)  # still open within the timeout


def test_no_genkit_reflection_server_without_genkit_env(tmp_path: Path) -> None:
    prod, dev = tmp_path / "prod", tmp_path / "dev"
    prod.mkdir()
    dev.mkdir()
    with run_server(prod):
        time.sleep(0.5)
    assert not (prod / ".genkit").exists()
    # The same check sees a reflection server when Genkit's dev mode is on.
    with run_server(dev, env={"GENKIT_ENV": "dev"}):
        deadline = time.monotonic() + 10
        while not (dev / ".genkit").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    assert (dev / ".genkit").exists()


def test_host_flag_binds_the_given_address(tmp_path: Path) -> None:
    with run_server(tmp_path) as server:  # run_server passes --host 127.0.0.1
        assert httpx.get(f"http://127.0.0.1:{server.port}/health").status_code == 200
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://[::1]:{server.port}/health", timeout=1)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux only")
def test_module_entry_point_runs(tmp_path: Path) -> None:
    proc = run_cli(["--help"], cwd=tmp_path)
    assert "endpoints-hello" in proc.stdout


def test_granian_warns_of_its_slow_head_bound_only_where_other_hosts_can_connect(
    tmp_path: Path,
) -> None:
    """granian cuts a slow request head after KEEP_ALIVE_TIMEOUT, not HEADER_READ_TIMEOUT.

    Asked to listen on 192.0.2.1 — a documentation address (RFC 5737) no host owns, so
    the bind fails and nothing is ever reachable or sent — the runner has already said so
    at start-up. On loopback, where only a local proxy can connect, it stays quiet.
    """
    env = {"KEEP_ALIVE_TIMEOUT": "75", "HEADER_READ_TIMEOUT": "10"}
    args = ["--server", "granian", "--no-grpc", "--port", "8080"]
    proc = run_cli([*args, "--host", "192.0.2.1"], env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode != 0  # it could not bind
    warnings = [e for e in json_lines(proc.stdout + proc.stderr) if e.get("event") == WARNING]
    assert len(warnings) == 1, proc.stdout + proc.stderr
    assert (warnings[0]["slow_head_seconds"], warnings[0]["host"]) == (75, "192.0.2.1")

    with run_server(tmp_path, args=["--server", "granian", "--no-grpc"], env=env) as server:
        assert server.proc.poll() is None
        assert WARNING not in server.log_text()


WARNING = "granian_slow_head_bound"


def json_lines(text: str) -> list[dict[str, object]]:
    events = []
    for line in text.splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events
