"""The deployment files: the Kubernetes manifests against the Kubernetes schemas (shipped inside
kubernetes-validate, so offline), and the compose file's structure, since no cluster or Docker
engine runs here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from serving.settings import ServiceSettings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
# The oldest Kubernetes release the manifests must apply to (autoscaling/v2, policy/v1 PDBs).
KUBERNETES_VERSION = "1.27.0"


def _manifests() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def _by_kind(kind: str) -> dict[str, Any]:
    found = [doc for doc in _manifests() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("manifest", _manifests(), ids=lambda doc: doc["kind"])
def test_every_manifest_is_valid_kubernetes(manifest: dict[str, Any]) -> None:
    """Strict: a misspelt or misplaced field is an error, as `kubectl apply` would make it."""
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_the_validator_catches_a_wrong_field() -> None:
    """The check above can fail: a field in the wrong place is refused."""
    deployment = _by_kind("Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_the_deployment_probes_serves_and_mounts_what_the_service_uses() -> None:
    deployment = _by_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    # The pod is given longer than the service's own grace to finish requests in flight.
    grace = ServiceSettings.model_fields["shutdown_grace"].default
    assert pod["terminationGracePeriodSeconds"] > grace

    environment = {item["name"]: item for item in container["env"]}
    assert set(environment) - {"OMP_NUM_THREADS"} <= _service_variables()
    secret = _by_kind("Secret")
    reference = environment["CLAIMS_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert reference["name"] == secret["metadata"]["name"]
    assert reference["key"] in secret["stringData"]

    claim = _by_kind("PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    data_volume = volumes[mounts[environment["CLAIMS_DATA_DIR"]["value"]]]
    assert data_volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    # The Dockerfile's user owns the data directory.
    assert pod["securityContext"]["runAsUser"] == _dockerfile_uid()
    assert container["ports"][0]["containerPort"] == _dockerfile_port()


def test_service_budget_and_autoscaler_select_the_deployment() -> None:
    deployment = _by_kind("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = _by_kind("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    container_ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert port["targetPort"] in {p["name"] for p in container_ports}
    budget = _by_kind("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    autoscaler = _by_kind("HorizontalPodAutoscaler")
    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert autoscaler["spec"]["minReplicas"] > budget["spec"]["minAvailable"]


def test_compose_runs_two_replicas_on_one_database_and_one_data_volume() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    replicas = {name: s for name, s in services.items() if s.get("image", "").startswith("claims")}
    assert len(replicas) == 2
    for replica in replicas.values():
        environment = replica["environment"]
        assert set(environment) - {"FORWARDED_ALLOW_IPS"} <= _service_variables()
        assert "@postgres:5432/" in environment["CLAIMS_DATABASE_URL"]
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert f"data:{environment['CLAIMS_DATA_DIR']}" in replica["volumes"]
        assert "ports" not in replica  # reached through the balancer only
        assert (DEPLOY / replica["build"]["context"] / replica["build"]["dockerfile"]).is_file()
    assert "data" in compose["volumes"]
    assert "healthcheck" in services["postgres"]

    balancer = services["balancer"]
    (mount,) = balancer["volumes"]
    config = (DEPLOY / mount.split(":")[0]).read_text()
    servers = re.findall(r"^\s*server \S+ (\S+):(\d+) check", config, re.MULTILINE)
    assert sorted(host for host, _ in servers) == sorted(replicas)
    assert {int(port) for _, port in servers} == {_dockerfile_port()}
    assert "option httpchk GET /readyz" in config
    (published,) = balancer["ports"]
    assert re.search(rf"^\s*bind :{published.rsplit(':', 1)[1]}$", config, re.MULTILINE)


def _service_variables() -> set[str]:
    """The CLAIMS_* variables the service reads: a misspelt one would be ignored silently."""
    return {f"CLAIMS_{name.upper()}" for name in ServiceSettings.model_fields}


def _dockerfile_text() -> str:
    return (DEPLOY.parent / "Dockerfile").read_text()


def _dockerfile_uid() -> int:
    return int(re.search(r"useradd .*--uid (\d+)", _dockerfile_text()).group(1))


def _dockerfile_port() -> int:
    return int(re.search(r"^EXPOSE (\d+)$", _dockerfile_text(), re.MULTILINE).group(1))
