# SPDX-License-Identifier: Apache-2.0
"""The Kubernetes manifests (deploy/k8s): every render validates offline and strictly
against Kubernetes' JSON schemas, and the invariants that tie them to the app hold —
probe paths the app serves, ports and settings the app reads, a grace period longer than
the drain, the security context. (checkov: test_checkov.py.)"""

from __future__ import annotations

import asyncio
import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.conftest import DOCKERFILE, RENDERS, REPO, env_of, only, parse_dockerfile, stages
from tests.unit.asgi_helpers import call, http_scope, lifespan

# The oldest Kubernetes the manifests need (the preStop sleep action is 1.30), and the
# newest whose schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# Custom resources have no schema in Kubernetes' own set: checked in
# test_servicemonitor_selects_the_service instead.
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
# Variables the pods set that are not the kit's settings: where to write (read-only root).
NOT_SETTINGS = {"TMPDIR", "HOME", "PROMETHEUS_MULTIPROC_DIR"}
EXPECTED_KINDS = {
    "Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget",
    "NetworkPolicy", "ServiceAccount", "Namespace",
}  # fmt: skip
# Variables a developer's shell may hold that would change the app built in process.
SCRUB = (
    "REDIS_URL", "API_KEYS", "TRUSTED_HOSTS", "MODEL", "GEMINI_API_KEY", "OPENAI_API_KEY",
    "GENKIT_ENV", "METRICS_KEY", "METRICS_ENABLED", "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "PROMETHEUS_MULTIPROC_DIR",
)  # fmt: skip
VOLUME = "/tmp"  # noqa: S108 - the pod's emptyDir, a path in the container
APP_LABELS = {"app.kubernetes.io/name": "genkit-endpoints", "app.kubernetes.io/component": "api"}


def _setting_names() -> set[str]:
    from endpoints_hello.app import APP
    from genkit_endpoints.serving.settings import GROUPS

    groups = [*GROUPS.values(), *([APP.settings] if APP.settings else [])]
    return {name.upper() for group in groups for name in group.model_fields}


def _default(group: str, field: str) -> Any:
    from genkit_endpoints.serving.settings import GROUPS

    return GROUPS[group].model_fields[field].default


def _app(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The API Deployment and its app container."""
    deployment = only(objects, "Deployment", "genkit-endpoints")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, container


def _config(objects: list[dict[str, Any]]) -> dict[str, str]:
    (cm,) = [o for o in objects if o["kind"] == "ConfigMap"]
    assert cm["metadata"]["name"].startswith("genkit-endpoints-config")
    return dict(cm["data"])


def _workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]


def _probes(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        k: container[k]
        for k in ("startupProbe", "livenessProbe", "readinessProbe")
        if k in container
    }


def _port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


# ----------------------------------------------------------------- rendering, schemas ---


def test_every_render_has_the_expected_objects(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert set(rendered) == set(RENDERS)
    for name, objects in rendered.items():
        kinds = {o["kind"] for o in objects}
        assert kinds >= EXPECTED_KINDS, name
        assert "Secret" not in kinds, f"{name}: a Secret's values never live in the repo"
        components = RENDERS[name][1]
        assert ("ServiceMonitor" in kinds) == ("components/servicemonitor" in components), name
        assert ("StatefulSet" in kinds) != ("components/external-redis" in components), name
        namespaces = {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"}
        (namespace,) = namespaces
        assert namespace == only(objects, "Namespace")["metadata"]["name"], name


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates_strictly_offline(
    rendered: dict[str, list[dict[str, Any]]], version: str
) -> None:
    checked = 0
    for name, objects in rendered.items():
        for obj in objects:
            if (obj["apiVersion"], obj["kind"]) in CRDS:
                continue
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']} ({version}): "
                            f"{e.message} at {'/'.join(map(str, e.path))}")  # fmt: skip
            checked += 1
    assert checked > 30


def test_strict_validation_rejects_an_unknown_field(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """The schemas are really applied: a misspelt field fails."""
    deployment = copy.deepcopy(_app(rendered["prod"])[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)


def test_servicemonitor_selects_the_service(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """ServiceMonitor is a CRD (no schema offline): its few fields are checked here."""
    for name in ("dev+servicemonitor", "prod+all-components"):
        objects = rendered[name]
        monitor = only(objects, "ServiceMonitor")
        service = only(objects, "Service", "genkit-endpoints")
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()
        ports = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in ports
            assert endpoint["path"] == "/metrics"
            assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "authorization"}


# ----------------------------------------------------------------- the app's contract ---


def test_probe_paths_are_served_by_the_app(
    rendered: dict[str, list[dict[str, Any]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every HTTP probe path (and the ServiceMonitor's) answers 200 from the sample app's
    real route table, built in process as the server builds it."""
    paths = {"/metrics"}
    for objects in rendered.values():
        for probe in _probes(_app(objects)[1]).values():
            if "httpGet" in probe:
                paths.add(probe["httpGet"]["path"])
    assert {"/health", "/ready"} <= paths

    from endpoints_hello.app import APP
    from genkit_endpoints.serving.app import create_service

    monkeypatch.chdir(tmp_path)  # no developer .env
    for name in SCRUB:
        monkeypatch.delenv(name, raising=False)
    settings = APP.load_settings(None, host="127.0.0.1", grpc_port=0, metrics_enabled=True)
    service = create_service(APP, settings)

    asked = [*sorted(paths), "/no-such-probe"]  # the control: a path the app lacks

    async def statuses() -> dict[str, int]:
        async with lifespan(service.asgi):
            return {p: (await call(service.asgi, http_scope(p))).status for p in asked}

    assert asyncio.run(statuses()) == {**dict.fromkeys(sorted(paths), 200), "/no-such-probe": 404}


def test_grpc_readiness_probe_names_the_served_service(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    from endpoints_hello.app import APP
    from endpoints_hello.generated import genkit_sample_pb2

    served = genkit_sample_pb2.DESCRIPTOR.services_by_name["GenkitService"].full_name
    assert APP.grpc_service is not None
    assert APP.grpc_service.endswith(":GenkitService")
    _, container = _app(rendered["prod+all-components"])
    probe = container["readinessProbe"]["grpc"]
    assert probe["service"] == served
    assert probe["port"] == _port_number(container, "grpc")


def test_config_map_holds_only_valid_settings(
    rendered: dict[str, list[dict[str, Any]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every ConfigMap key is one of the kit's settings, and the values pass its own
    validation (the same that stops a bad start-up with exit code 2)."""
    from endpoints_hello.app import APP

    monkeypatch.chdir(tmp_path)
    names = _setting_names()
    for name, objects in rendered.items():
        config = _config(objects)
        assert set(config) <= names, f"{name}: not settings: {set(config) - names}"
        APP.load_settings(None, **{k.lower(): v for k, v in config.items()})
        _, container = _app(objects)
        env = {e["name"] for e in container.get("env", [])}
        assert env <= names | NOT_SETTINGS, f"{name}: unknown env {env - names - NOT_SETTINGS}"


def test_grace_period_exceeds_shutdown_grace_plus_prestop(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for name, objects in rendered.items():
        deployment, container = _app(objects)
        grace = float(_config(objects).get("SHUTDOWN_GRACE", _default("server", "shutdown_grace")))
        pre_stop = container["lifecycle"]["preStop"]
        # The kubelet's own sleep: no binary needed in the (possibly distroless) image.
        assert set(pre_stop) == {"sleep"}, pre_stop
        sleep = pre_stop["sleep"]["seconds"]
        assert sleep >= 1
        period = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert period > grace + sleep, f"{name}: {period} <= {grace} + {sleep}"


def test_ports_match_the_settings_and_the_service(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    runtime_env = env_of(stages(parse_dockerfile())["runtime"])
    for name, objects in rendered.items():
        config = _config(objects)
        _, container = _app(objects)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["http"] == int(config.get("PORT", _default("server", "port")))
        assert ports["grpc"] == int(config.get("GRPC_PORT", _default("grpc", "grpc_port")))
        # The image's defaults and the settings' defaults agree with the pod's ports.
        assert ports["http"] == _default("server", "port") == int(runtime_env["PORT"])
        assert ports["grpc"] == _default("grpc", "grpc_port") == int(runtime_env["GRPC_PORT"])
        for workload in _workloads(objects):
            (pod_container,) = workload["spec"]["template"]["spec"]["containers"]
            selector = workload["spec"]["selector"]["matchLabels"]
            services = [
                o for o in objects
                if o["kind"] == "Service" and o["spec"]["selector"] == selector
            ]  # fmt: skip
            assert len(services) == 1, f"{name}: {workload['metadata']['name']}"
            declared = {p["containerPort"] for p in pod_container["ports"]}
            for port in services[0]["spec"]["ports"]:
                assert _port_number(pod_container, port["targetPort"]) in declared, port
                assert port.get("appProtocol"), f"{name}: no appProtocol on {port}"
            for probe in _probes(pod_container).values():
                for handler in ("httpGet", "tcpSocket", "grpc"):
                    if handler in probe:
                        assert _port_number(pod_container, probe[handler]["port"]) in declared
        service = only(objects, "Service", "genkit-endpoints")
        assert {p["name"]: p["appProtocol"] for p in service["spec"]["ports"]} == {
            "http": "http",
            "grpc": "kubernetes.io/h2c",
        }


def test_security_context(rendered: dict[str, list[dict[str, Any]]]) -> None:
    user = next(i.args for i in parse_dockerfile(DOCKERFILE) if i.keyword == "USER")
    image_uid = int(user.split(":")[0])
    for name, objects in rendered.items():
        for workload in _workloads(objects):
            where = f"{name}: {workload['metadata']['name']}"
            pod = workload["spec"]["template"]["spec"]
            assert pod["automountServiceAccountToken"] is False, where
            assert pod["securityContext"]["runAsNonRoot"] is True, where
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
            for c in pod["containers"]:
                sc = c["securityContext"]
                assert sc["runAsNonRoot"] is True, where
                assert isinstance(sc["runAsUser"], int), where
                assert sc["runAsUser"] >= 10000, where
                assert sc["readOnlyRootFilesystem"] is True, where
                assert sc["allowPrivilegeEscalation"] is False, where
                assert sc.get("privileged", False) is False, where
                assert sc["capabilities"] == {"drop": ["ALL"]}, where
                assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
                for kind in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(c["resources"][kind]), where
                assert c["livenessProbe"], where
                assert c["readinessProbe"], where
        deployment, container = _app(objects)
        assert container["securityContext"]["runAsUser"] == image_uid, "the image's USER"
        # Writable paths are emptyDirs: /tmp and the Prometheus multiprocess directory.
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        env = {e["name"]: e.get("value") for e in container["env"]}
        for path in (VOLUME, env["PROMETHEUS_MULTIPROC_DIR"], env["TMPDIR"], env["HOME"]):
            assert "emptyDir" in mounts[path], f"{name}: {path} is not an emptyDir"


def test_network_policies(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, objects in rendered.items():
        policy = only(objects, "NetworkPolicy", "genkit-endpoints")["spec"]
        assert policy["podSelector"]["matchLabels"] == APP_LABELS
        assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
        _, container = _app(objects)
        ingress_ports = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
        assert ingress_ports == {p["name"] for p in container["ports"]}, name
        egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
        assert egress_ports <= {53, 443, 6379, 6380}, f"{name}: {egress_ports}"
        assert {53, 443, 6379} <= egress_ports, name
        assert all(rule.get("to") for rule in policy["egress"]), f"{name}: egress to anywhere"


def test_secrets_by_reference_only(rendered: dict[str, list[dict[str, Any]]]) -> None:
    names = _setting_names()
    for name, objects in rendered.items():
        _, container = _app(objects)
        refs = [e["secretRef"] for e in container["envFrom"] if "secretRef" in e]
        assert [r["name"] for r in refs] == ["genkit-endpoints-secrets"], name
        assert refs[0]["optional"] is (name.startswith("dev")), name
        for e in container["env"]:
            assert "value" in e or "secretKeyRef" in e["valueFrom"], e
            if "valueFrom" in e:
                assert e["valueFrom"]["secretKeyRef"]["name"] == "genkit-endpoints-secrets"
    external = _app(rendered["prod+all-components"])[1]
    assert {"name": "REDIS_URL", "valueFrom": {"secretKeyRef": {
        "name": "genkit-endpoints-secrets", "key": "REDIS_URL"}}} in external["env"]  # fmt: skip
    # The documented `kubectl create secret` names only real settings.
    readme = (REPO / "deploy" / "README.md").read_text()
    keys = set(re.findall(r"--from-literal=([A-Z_]+)=", readme))
    assert {"GEMINI_API_KEY", "API_KEYS"} <= keys, keys
    assert keys <= names, keys - names


def test_autoscaling_and_disruption_target_the_api(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    minimum = {"dev": 1, "prod": 3}
    for name, objects in rendered.items():
        deployment, _ = _app(objects)
        assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
        hpa = only(objects, "HorizontalPodAutoscaler")["spec"]
        assert hpa["scaleTargetRef"] == {
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "genkit-endpoints"}  # fmt: skip
        assert hpa["minReplicas"] == minimum[name.split("+")[0]]
        assert hpa["maxReplicas"] > hpa["minReplicas"]
        pdb = only(objects, "PodDisruptionBudget")["spec"]
        assert pdb["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        assert deployment["spec"]["template"]["metadata"]["labels"].items() >= APP_LABELS.items()
