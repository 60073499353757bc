# SPDX-License-Identifier: Apache-2.0
"""The Cloud Run Terraform module: formatted, scanned by checkov, and saying what we mean.

``terraform validate`` needs the Google provider downloaded (``make terraform-validate``,
run by the CI workflow); everything here works offline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from endpoints_hello.app import APP
from genkit_endpoints.serving.cli import parse_settings
from genkit_endpoints.serving.settings import GROUPS
from tests.deploy.tools import ROOT, require_terraform, run, uv_tool

MODULE = ROOT / "deploy" / "terraform" / "cloudrun"
TF_FILES = sorted(MODULE.glob("*.tf"))
# Settings whose values are credentials: they may only come from Secret Manager.
SECRET_SETTINGS = {
    "API_KEYS",
    "GEMINI_API_KEY",
    "OPENAI_API_KEY",
    "METRICS_KEY",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "SENTRY_DSN",
    "REDIS_URL",
    "RATE_LIMIT_REDIS_URL",
    "CACHE_REDIS_URL",
    "CB_REDIS_URL",
}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
SETTING_NAMES = {field.upper() for group in GROUPS.values() for field in group.model_fields}
# What a credential looks like when someone pastes one: Google and OpenAI keys, PEM keys,
# a password in a URL, a hashed API key entry.
SECRET_SHAPES = re.compile(
    r"AIza[0-9A-Za-z_-]{30,}|sk-[A-Za-z0-9_-]{16,}|-----BEGIN [A-Z ]*PRIVATE KEY|"
    r"://[^/\s:@\"]*:[^@\s\"$]+@|sha256:[0-9a-f]{64}\b(?!\")"
)


def _unquote(key: str) -> str:
    return key.strip('"')


def _plain(node: Any) -> Any:
    """python-hcl2's tree without its markers: keys and string literals unquoted, and no
    ``__is_block__`` / ``__comments__`` entries."""
    if isinstance(node, dict):
        return {_unquote(k): _plain(v) for k, v in node.items() if not k.startswith("__")}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str) and len(node) >= 2 and node[0] == node[-1] == '"':
        return node[1:-1]
    return node


def _load(path: Path) -> dict[str, Any]:
    with path.open() as f:
        data: dict[str, Any] = _plain(hcl2.load(f))
    return data


def _blocks(kind: str) -> dict[str, dict[str, Any]]:
    """Top-level blocks of one kind across the module: ``{"type.name" | "name": body}``."""
    out: dict[str, dict[str, Any]] = {}
    for path in TF_FILES:
        for entry in _load(path).get(kind, []):
            for first, body in entry.items():
                if kind == "resource":
                    for name, inner in body.items():
                        out[f"{_unquote(first)}.{_unquote(name)}"] = inner
                else:
                    out[_unquote(first)] = body
    return out


def _locals() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in TF_FILES:
        for entry in _load(path).get("locals", []):
            merged.update(entry)
    return merged


def _one(body: dict[str, Any], key: str) -> dict[str, Any]:
    """The single nested block ``key`` of ``body`` (python-hcl2 gives blocks as lists)."""
    blocks = body[key]
    assert isinstance(blocks, list), key
    assert len(blocks) == 1, f"expected one {key} block, found {len(blocks)}"
    block: dict[str, Any] = blocks[0]
    return block


def _dynamic(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The ``dynamic "name"`` blocks of ``body``."""
    return [
        inner
        for entry in body.get("dynamic", [])
        for label, inner in entry.items()
        if _unquote(label) == name
    ]


def _service() -> dict[str, Any]:
    return _blocks("resource")["google_cloud_run_v2_service.this"]


def _container() -> dict[str, Any]:
    return _one(_one(_service(), "template"), "containers")


def test_terraform_files_are_formatted() -> None:
    terraform = require_terraform()
    result = run([terraform, "fmt", "-check", "-recursive", "-diff", str(ROOT / "deploy")])
    assert result.returncode == 0, f"run `terraform fmt -recursive deploy`:\n{result.stdout}"


def test_every_variable_is_described_typed_and_checked() -> None:
    variables = _blocks("variable")
    assert variables, "no variables found"
    for name, body in variables.items():
        assert str(body.get("description", "")).strip(), f"variable {name} has no description"
        assert "type" in body, f"variable {name} has no type"
        # A yes/no needs no validation; every other value can be wrong in a way that only
        # surfaces as a failed deployment, so it is checked at plan time.
        if body["type"] != "bool":
            assert body.get("validation"), f"variable {name} has no validation block"
            for rule in body["validation"]:
                assert str(rule.get("error_message", "")).strip(), f"{name}: no error message"


def test_the_service_runs_the_pinned_image_with_probes() -> None:
    container = _container()
    assert container["image"] == "${var.image}"
    startup = _one(container, "startup_probe")
    liveness = _one(container, "liveness_probe")
    # The REST service: traffic after /ready says so, restarts only when /health stops.
    assert [b["content"][0]["path"] for b in _dynamic(startup, "http_get")] == ["/ready"]
    assert [b["content"][0]["path"] for b in _dynamic(liveness, "http_get")] == ["/health"]
    # The gRPC service probes gRPC health on its own port.
    assert _dynamic(startup, "grpc")
    assert _dynamic(liveness, "grpc")
    image_rules = _blocks("variable")["image"]["validation"]
    assert any("@sha256:" in rule["condition"] for rule in image_rules), "image not by digest"


def test_scaling_concurrency_and_timeouts_come_from_variables() -> None:
    template = _one(_service(), "template")
    assert template["max_instance_request_concurrency"] == "${var.max_concurrency}"
    assert template["timeout"] == "${var.request_timeout_seconds}s"
    scaling = _one(template, "scaling")
    assert scaling["min_instance_count"] == "${var.min_instances}"
    assert scaling["max_instance_count"] == "${var.max_instances}"
    assert template["service_account"] == "${google_service_account.runtime.email}"


def test_rest_speaks_http1_and_grpc_speaks_h2c_on_its_own_service() -> None:
    services = _locals()["services"]
    # One port per Cloud Run service: REST keeps the HTTP/1.1 hop its servers speak,
    # gRPC gets HTTP/2 cleartext end to end on a second service.
    rest, grpc = services.split("var.grpc_enabled ?")
    assert 'port_name = "http1"' in rest
    assert 'GRPC_ENABLED = "false"' in rest
    assert 'port_name = "h2c"' in grpc
    assert 'GRPC_ENABLED = "true"' in grpc
    assert "GRPC_PORT = tostring(var.grpc_port)" in grpc
    port = _one(_container(), "ports")
    assert port["name"] == "${each.value.port_name}"


def test_secrets_reach_the_container_only_by_reference() -> None:
    container = _container()
    env_blocks = _dynamic(container, "env")
    assert [b["for_each"] for b in env_blocks] == [
        "${merge(local.common_env, each.value.env)}",
        "${local.secret_env}",
    ]
    plain, secret = (b["content"][0] for b in env_blocks)
    assert plain["value"] == "${env.value}"
    ref = _one(_one(secret, "value_source"), "secret_key_ref")
    assert ref == {"secret": "${env.value.secret}", "version": "${env.value.version}"}
    # Plain env refuses every secret-bearing setting; secret_env accepts only those.
    variables = _blocks("variable")
    plain_rules = " ".join(r["condition"] for r in variables["env"]["validation"])
    secret_rules = " ".join(r["condition"] for r in variables["secret_env"]["validation"])
    for name in SECRET_SETTINGS:
        assert f'"{name}"' in plain_rules, f"env accepts {name} as plain text"
        assert f'"{name}"' in secret_rules, f"secret_env refuses {name}"


def test_no_secret_is_written_in_the_module() -> None:
    files = [*TF_FILES, *MODULE.glob("*.tfvars")]
    for path in files:
        text = path.read_text()
        match = SECRET_SHAPES.search(text)
        assert match is None, f"{path.name}: looks like a credential: {match.group(0)[:12]}…"
    example = _load(MODULE / "example.tfvars")
    assert not SECRET_SETTINGS & set(example.get("env", {})), "a secret in plain env"


def test_the_shapes_catch_pasted_credentials() -> None:
    """The credential pattern above must match what it is there to catch."""
    for leaked in (
        "AIza" + "x" * 35,
        "sk-" + "a" * 40,
        "-----BEGIN RSA PRIVATE KEY",
        "redis://:hunter2@10.0.0.3:6379/0",
        "web:sha256:" + "0" * 64 + ",",
    ):
        assert SECRET_SHAPES.search(leaked), leaked
    assert SECRET_SHAPES.search("redis://:${google_redis_instance.shared[0].auth_string}@") is None


def test_every_environment_name_is_a_real_setting() -> None:
    """A misspelt name would be ignored by the app: each one the module or its example
    sets must be a setting the kit reads."""
    local = _locals()
    names = set(re.findall(r"\b([A-Z][A-Z0-9_]+) = ", local["common_env"] + local["services"]))
    names |= set(_load(MODULE / "example.tfvars").get("env", {}))
    names |= SECRET_SETTINGS
    assert {"SHUTDOWN_GRACE", "GRPC_ENABLED", "MAX_CONCURRENT_REQUESTS"} <= names
    assert names - SETTING_NAMES == set()


def test_the_service_account_reads_only_the_named_secrets() -> None:
    resources = _blocks("resource")
    grants = resources["google_secret_manager_secret_iam_member.runtime"]
    assert grants["role"] == "roles/secretmanager.secretAccessor"
    assert grants["secret_id"] == "${each.value}"  # noqa: S105 - an expression, not a secret
    assert grants["for_each"] == "${local.readable_secrets}"
    # No project-wide grant of any kind.
    assert not [name for name in resources if name.startswith("google_project_iam")]


@pytest.mark.timeout(300)
def test_checkov_finds_nothing_unexplained() -> None:
    # Scanned with every feature on (example.tfvars), so the optional resources count.
    cmd = uv_tool("checkov", "checkov", "--directory", str(MODULE), "--var-file")
    cmd += [str(MODULE / "example.tfvars"), "--framework", "terraform", "--output", "json"]
    result = run([*cmd, "--quiet", "--skip-download", "--compact"], timeout=280)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']}" for c in report["results"].get("failed_checks", [])
    ]
    assert summary["failed"] == 0, failed
    assert summary["resource_count"] >= 5
    for check in report["results"].get("skipped_checks", []):
        assert str(check.get("suppress_comment", "")).strip(), f"{check['check_id']}: no reason"


def _console(expression: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Evaluate ``expression`` over the module's variables and derived settings — the
    part that needs no provider, so it runs offline without ``terraform init``."""
    for name in ("variables.tf", "settings.tf"):
        shutil.copy(MODULE / name, tmp_path / name)
    cmd = [require_terraform(), "console", f"-var-file={MODULE / 'example.tfvars'}", *args]
    return subprocess.run(
        cmd,
        input=expression,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "TF_CLI_CONFIG_FILE": os.devnull},
    )


@pytest.mark.parametrize("service", ["rest", "grpc"])
def test_each_service_starts_with_settings_the_kit_accepts(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container's flags and environment, as the module derives them for the
    example, parsed by the same code the container's entrypoint runs."""
    result = _console(
        "jsonencode({services = local.services, common = local.common_env})", tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "Error" not in result.stderr, result.stderr
    derived = json.loads(json.loads(result.stdout))
    spec = derived["services"][service]
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    # Cloud Run sets PORT to the container port; the rest is the module's.
    environ = {**derived["common"], **spec["env"], "PORT": str(spec["port"])}
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env file takes part
    settings = parse_settings(spec["args"], APP)
    assert settings.server.shutdown_grace == 8
    assert settings.server.workers == 1
    assert settings.http.request_timeout == 120
    if service == "rest":
        assert settings.server.port == spec["port"] == 8080
        assert settings.grpc.grpc_enabled is False
        assert settings.http.max_concurrent_requests == 80
    else:
        # REST moved aside by the flag; gRPC on the port Cloud Run sends h2c to.
        assert settings.server.port == 8081
        assert settings.grpc.grpc_enabled is True
        assert settings.grpc.grpc_port == spec["port"] == 50051
        assert settings.grpc.grpc_max_concurrent_rpcs == 80


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("image=europe-docker.pkg.dev/p/r/app:latest", "pinned by digest"),
        ("shutdown_grace_seconds=10", "SIGKILL 10 seconds after SIGTERM"),
        ('env={API_KEYS="web:secret"}', "env must not set secrets"),
        ('env={PORT="9000"}', "env must not set secrets"),
        ('secret_env={MODEL={secret="m"}}', "secret_env names must be"),
        ('secret_env={API_KEYS={secret="k", version="newest"}}', "a number, or"),
        ("max_concurrency=1001", "max_concurrency must be"),
        ("grpc_port=8081", "grpc_port must be"),
        ('invokers=["allUsers"]', "public_access"),
        ("service_name=" + "a" * 45, "at most 44 characters"),
    ],
)
def test_variable_validation_refuses_bad_values(bad: str, message: str, tmp_path: Path) -> None:
    result = _console("local.services", "-var", bad, tmp_path=tmp_path)
    # The console reports the refusal but still exits 0 once its input ends.
    error = " ".join(ANSI.sub("", result.stderr).replace("\u2502", " ").split())
    assert "Invalid value for variable" in error, result.stdout
    assert message in error


def test_the_example_passes_variable_validation(tmp_path: Path) -> None:
    result = _console("local.probe_host", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Error" not in result.stderr, result.stderr
    assert result.stdout.strip() == '"api.example.com"'


# The shortest and longest names, and ones cut right after a hyphen.
@pytest.mark.parametrize(
    "service_name", ["a", "x" * 44, "a" * 22 + "-" + "b" * 21, "a" * 33 + "-" + "b" * 10]
)
def test_created_names_fit_their_limits(service_name: str, tmp_path: Path) -> None:
    """Service-account ids are 6-30 characters, Memorystore names at most 40; both
    start with a letter and end with a letter or digit."""
    result = _console(
        "jsonencode(local.names)", "-var", f"service_name={service_name}", tmp_path=tmp_path
    )
    assert "Error" not in result.stderr, result.stderr
    names = json.loads(json.loads(result.stdout))
    assert re.fullmatch(r"[a-z][-a-z0-9]{4,28}[a-z0-9]", names["service_account"])
    assert re.fullmatch(r"[a-z][-a-z0-9]{0,38}[a-z0-9]", names["redis"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,255}", names["redis_secret"])
