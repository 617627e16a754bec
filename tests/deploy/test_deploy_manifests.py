"""The deployment files: Dockerfiles, docker compose and kustomize, checked without a Docker engine.

- both generators agree with what is checked in (`--check`);
- every YAML file parses;
- every platform service has an image, a compose service and a Deployment, with the
  environment it reads and a health check on /health.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose" / "compose.yaml"
K8S = DEPLOY / "k8s"

# The 18 deployable services of ARCHITECTURE.md §1: a service missing on disk fails the tests.
SERVICES: tuple[str, ...] = (
    "gateway",
    "customers",
    "metering",
    "pricing",
    "rating",
    "subscriptions",
    "engine",
    "invoicing",
    "contracts",
    "ledger",
    "wallet",
    "payments",
    "dunning",
    "spend-alerts",
    "notifications",
    "audit",
    "reporting",
    "demo",
)
GATEWAY = "gateway"
ROUTED = tuple(name for name in SERVICES if name not in {GATEWAY, "demo"})
INFRA = (
    "kafka",
    "cockroach",
    "cockroach-init",
    "clickhouse",
    "redis",
    "tigerbeetle-format",
    "tigerbeetle",
    "localstripe",
    "caddy",
)

COMMON_ENV = frozenset({"KAFKA_BOOTSTRAP", "DATABASE_URL", "REDIS_URL", "HTTP_PORT", "HTTP_HOST"})


def env_name(service: str) -> str:
    return service.upper().replace("-", "_")


def package(service: str) -> str:
    return "billing_" + service.replace("-", "_")


def port(service: str) -> int:
    return 3000 if service == GATEWAY else 8000


def required_env(service: str) -> frozenset[str]:
    """What a service process must find in its environment (beyond what has a sane default)."""
    extra: set[str] = set()
    if service == GATEWAY:
        extra |= {"JWT_SECRET"} | {f"{env_name(name)}_SERVICE_URL" for name in ROUTED}
    if service == "metering":
        extra.add("CLICKHOUSE_URL")
    if service == "ledger":
        extra.add("TIGERBEETLE_ADDRESSES")
    if service == "payments":
        extra |= {"STRIPE_API_BASE", "STRIPE_API_KEY"}
    return COMMON_ENV | extra


def load_all(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as stream:
        return [document for document in yaml.safe_load_all(stream) if document is not None]


def yaml_files() -> list[Path]:
    found = [
        path
        for directory in (DEPLOY / "compose", K8S)
        for pattern in ("*.yaml", "*.yml")
        for path in directory.rglob(pattern)
    ]
    return sorted(found)


def discovered_services() -> set[str]:
    """The services on disk: those with a pyproject.toml once any has one, else the directories."""
    services_dir = ROOT / "services"
    with_project = {path.parent.name for path in services_dir.glob("*/pyproject.toml")}
    if with_project:
        return with_project
    return {path.name for path in services_dir.iterdir() if path.is_dir()}


# ----------------------------------------------------------------------------------------------
# Inventory and generators
# ----------------------------------------------------------------------------------------------


def test_the_services_on_disk_are_the_18_of_the_architecture() -> None:
    assert discovered_services() == set(SERVICES)


@pytest.mark.parametrize(
    "script", ["deploy/docker/generate_dockerfiles.py", "deploy/k8s/generate.py"]
)
def test_generated_files_have_not_drifted(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / script), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{script} --check failed:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("path", yaml_files(), ids=lambda path: str(path.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    documents = load_all(path)
    assert documents, f"{path} has no document"
    for document in documents:
        assert isinstance(document, dict), f"{path}: a document is not a mapping"


def test_yaml_files_were_found() -> None:
    names = {path.relative_to(DEPLOY).as_posix() for path in yaml_files()}
    assert "compose/compose.yaml" in names
    assert "k8s/base/kustomization.yaml" in names
    assert {f"k8s/base/{name}.yaml" for name in SERVICES} <= names


# ----------------------------------------------------------------------------------------------
# Dockerfiles
# ----------------------------------------------------------------------------------------------


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, f"{dockerfile} ends with a line continuation"
    pairs = []
    for line in joined:
        keyword, _, rest = line.partition(" ")
        pairs.append((keyword.upper(), rest.strip()))
    return pairs


def only(pairs: list[tuple[str, str]], keyword: str) -> str:
    found = [rest for name, rest in pairs if name == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_runs_the_service_module(service: str) -> None:
    dockerfile = ROOT / "services" / service / "Dockerfile"
    assert dockerfile.is_file(), f"missing {dockerfile.relative_to(ROOT)}"
    pairs = instructions(dockerfile)
    keywords = [name for name, _ in pairs]

    assert only(pairs, "FROM") == "python:3.11-slim"
    assert json.loads(only(pairs, "CMD")) == ["python", "-m", package(service)]
    assert only(pairs, "USER") not in {"root", "0"}
    assert only(pairs, "EXPOSE") == str(port(service))
    assert any(f"HTTP_PORT={port(service)}" in rest for name, rest in pairs if name == "ENV")
    healthcheck = only(pairs, "HEALTHCHECK")
    assert "/health" in healthcheck
    assert "urllib" in healthcheck

    # Dependencies in their own cached layer first, then the code without dependencies.
    copies = [rest for name, rest in pairs if name == "COPY"]
    runs = [rest for name, rest in pairs if name == "RUN"]
    assert copies[0].startswith("requirements/runtime.txt ")
    assert any("pip install --no-cache-dir -r" in run for run in runs)
    install = next(run for run in runs if "--no-deps" in run)
    assert keywords.index("USER") > keywords.index("RUN")
    first_code_copy = next(i for i, (n, r) in enumerate(pairs) if n == "COPY" and "libs/" in r)
    deps_run = next(i for i, (n, r) in enumerate(pairs) if n == "RUN" and " -r " in r)
    assert deps_run < first_code_copy
    assert "libs/billing-common" in install
    assert f"services/{service}" in install
    if service == GATEWAY:
        # The gateway imports every service's schemas: all of them are installed.
        for other in SERVICES:
            assert re.search(rf"/services/{re.escape(other)}(\s|$)", install), other


def test_shared_dockerfile_takes_the_service_as_build_arguments() -> None:
    pairs = instructions(DEPLOY / "docker" / "service.Dockerfile")
    arguments = {rest.split("=")[0] for name, rest in pairs if name == "ARG"}
    assert {"SERVICE", "PACKAGE", "SOURCES", "HTTP_PORT"} <= arguments
    assert "/health" in only(pairs, "HEALTHCHECK")
    assert "BILLING_MODULE" in only(pairs, "CMD")


def test_dockerignore_keeps_the_build_context_small() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".local", "**/__pycache__", "**/tests"} <= patterns


# ----------------------------------------------------------------------------------------------
# docker compose
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    documents = load_all(COMPOSE_FILE)
    assert len(documents) == 1
    document: dict[str, Any] = documents[0]
    return document


def as_env(environment: Mapping[str, Any] | list[str] | None) -> dict[str, str]:
    if environment is None:
        return {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def test_compose_has_every_service_and_the_infrastructure(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(SERVICES) | set(INFRA) == set(services)


@pytest.mark.parametrize("service", SERVICES)
def test_compose_service_is_built_configured_and_health_checked(
    compose: dict[str, Any], service: str
) -> None:
    entry = compose["services"][service]

    build = entry["build"]
    assert (COMPOSE_FILE.parent / build["context"]).resolve() == ROOT
    assert build["dockerfile"] == "deploy/docker/service.Dockerfile"
    assert build["args"]["SERVICE"] == service
    assert build["args"]["PACKAGE"] == package(service)
    if service == GATEWAY:
        assert build["args"]["SOURCES"] == "all"

    env = as_env(entry["environment"])
    missing = required_env(service) - set(env)
    assert not missing, f"{service} lacks {sorted(missing)}"
    assert env["HTTP_PORT"] == str(port(service))
    assert env["KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["DATABASE_URL"] == "postgresql://root@cockroach:26257/billing?sslmode=disable"
    assert env["REDIS_URL"].startswith("redis://redis:6379")

    test = entry["healthcheck"]["test"]
    assert "/health" in " ".join(test)

    depends_on = entry["depends_on"]
    for infra in ("kafka", "cockroach", "redis"):
        assert depends_on[infra]["condition"] == "service_healthy"
    assert depends_on["cockroach-init"]["condition"] == "service_completed_successfully"


def test_compose_backends_of_the_services_that_need_them(compose: dict[str, Any]) -> None:
    services = compose["services"]
    metering = services["metering"]
    assert as_env(metering["environment"])["CLICKHOUSE_URL"] == "http://clickhouse:8123"
    assert metering["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    ledger = services["ledger"]
    assert as_env(ledger["environment"])["TIGERBEETLE_ADDRESSES"] == "tigerbeetle:3000"
    assert ledger["depends_on"]["tigerbeetle"]["condition"] == "service_healthy"
    payments = services["payments"]
    assert as_env(payments["environment"])["STRIPE_API_BASE"] == "http://localstripe:8420"
    assert payments["depends_on"]["localstripe"]["condition"] == "service_healthy"


def test_compose_gateway_routes_to_every_service_at_its_port(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = as_env(services[GATEWAY]["environment"])
    for name in ROUTED:
        url = env[f"{env_name(name)}_SERVICE_URL"]
        assert url == f"http://{name}:{as_env(services[name]['environment'])['HTTP_PORT']}"


def test_compose_infrastructure(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("kafka", "cockroach", "clickhouse", "redis", "tigerbeetle", "localstripe"):
        assert "healthcheck" in services[name], name

    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:3.9.")
    kafka_env = as_env(kafka["environment"])
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "PLAINTEXT://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]

    cockroach = services["cockroach"]
    assert cockroach["image"].startswith("cockroachdb/cockroach:")
    assert cockroach["command"][:2] == ["start-single-node", "--insecure"]
    init = services["cockroach-init"]
    assert "CREATE DATABASE IF NOT EXISTS billing" in " ".join(init["command"])

    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert services["redis"]["image"].startswith("redis:7")

    # TigerBeetle's server and client must be the same release.
    pinned = re.search(
        r"^tigerbeetle==(\S+)$",
        (ROOT / "requirements" / "runtime.txt").read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    assert pinned is not None
    for name in ("tigerbeetle-format", "tigerbeetle"):
        assert services[name]["image"] == f"ghcr.io/tigerbeetle/tigerbeetle:{pinned.group(1)}"
        assert "tigerbeetle-data:/data" in services[name]["volumes"]
    assert "format" in " ".join(services["tigerbeetle-format"]["command"])
    assert services["tigerbeetle"]["command"][0] == "start"

    localstripe = services["localstripe"]
    assert "pip install" in localstripe["build"]["dockerfile_inline"]
    assert "localstripe" in localstripe["build"]["dockerfile_inline"]
    assert localstripe["command"] == ["localstripe", "--port", "8420"]

    caddy = services["caddy"]
    assert caddy["depends_on"]["gateway"]["condition"] == "service_healthy"
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]


def test_caddy_proxies_api_bill_sh_and_localhost_to_the_gateway() -> None:
    caddyfile = (DEPLOY / "compose" / "Caddyfile").read_text(encoding="utf-8")
    assert re.search(r"^api\.bill\.sh \{", caddyfile, re.MULTILINE)
    assert re.search(r"^localhost \{\n\ttls internal", caddyfile, re.MULTILINE)
    assert "reverse_proxy gateway:3000" in caddyfile


# ----------------------------------------------------------------------------------------------
# Kubernetes
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base() -> dict[tuple[str, str], dict[str, Any]]:
    """Every document of deploy/k8s/base by (kind, name)."""
    kustomization = load_all(K8S / "base" / "kustomization.yaml")[0]
    resources: dict[tuple[str, str], dict[str, Any]] = {}
    for relative in kustomization["resources"]:
        for document in load_all(K8S / "base" / relative):
            key = (document["kind"], document["metadata"]["name"])
            assert key not in resources, f"{key} twice"
            resources[key] = document
    return resources


def test_base_kustomization_lists_every_base_file() -> None:
    kustomization = load_all(K8S / "base" / "kustomization.yaml")[0]
    on_disk = {
        path.name for path in (K8S / "base").glob("*.yaml") if path.name != "kustomization.yaml"
    }
    assert set(kustomization["resources"]) == on_disk


def container_env(
    deployment: dict[str, Any], config: dict[str, str]
) -> Iterator[tuple[str, str | None]]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == "billing-config"
        yield from config.items()
    for variable in container.get("env", []):
        if "value" in variable:
            yield variable["name"], variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "billing-secrets"
            assert ref["key"] == variable["name"]
            yield variable["name"], None


@pytest.mark.parametrize("service", SERVICES)
def test_k8s_deployment_and_service(
    base: dict[tuple[str, str], dict[str, Any]], service: str
) -> None:
    config: dict[str, str] = base[("ConfigMap", "billing-config")]["data"]
    deployment = base[("Deployment", service)]
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]

    assert container["image"].split(":")[0] == f"billsh/{service}"
    assert container["command"] == ["python", "-m", package(service)]
    assert container["ports"][0]["containerPort"] == port(service)

    env = dict(container_env(deployment, config))
    missing = required_env(service) - set(env)
    assert not missing, f"{service} lacks {sorted(missing)}"
    assert env["HTTP_PORT"] == str(port(service))

    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    for probe in (readiness, liveness):
        assert probe["httpGet"]["path"] == "/health"
        assert probe["httpGet"]["port"] == "http"
    assert liveness["periodSeconds"] > readiness["periodSeconds"]

    resources = container["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True

    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    k8s_service = base[("Service", service)]
    assert k8s_service["spec"]["selector"] == selector
    assert k8s_service["spec"]["ports"][0]["port"] == port(service)


def test_k8s_config_points_the_gateway_at_every_service(
    base: dict[tuple[str, str], dict[str, Any]],
) -> None:
    config = base[("ConfigMap", "billing-config")]["data"]
    for name in ROUTED:
        assert config[f"{env_name(name)}_SERVICE_URL"] == f"http://{name}:{port(name)}"
        assert ("Service", name) in base


def test_k8s_autoscaling_and_disruption_budget(
    base: dict[tuple[str, str], dict[str, Any]],
) -> None:
    autoscaled = {name for kind, name in base if kind == "HorizontalPodAutoscaler"}
    assert autoscaled == {"gateway", "metering", "rating"}
    for name in autoscaled:
        spec = base[("HorizontalPodAutoscaler", name)]["spec"]
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert spec["minReplicas"] >= 2
        [metric] = spec["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["averageUtilization"] == 70
    budgets = {name for kind, name in base if kind == "PodDisruptionBudget"}
    assert budgets == {"gateway"}


def test_k8s_secrets_are_only_an_example() -> None:
    secrets = [
        (path, document)
        for path in K8S.rglob("*.yaml")
        for document in load_all(path)
        if document.get("kind") == "Secret"
    ]
    assert [path.name for path, _ in secrets] == ["billing-secrets.example.yaml"]
    [(_, secret)] = secrets
    assert secret["metadata"]["name"] == "billing-secrets"
    assert set(secret["stringData"]) == {"JWT_SECRET", "STRIPE_API_KEY"}


def test_k8s_overlays() -> None:
    dev = load_all(K8S / "overlays" / "dev" / "kustomization.yaml")[0]
    prod = load_all(K8S / "overlays" / "prod" / "kustomization.yaml")[0]
    assert dev["resources"] == ["../../base"]
    assert prod["resources"] == ["../../base"]
    assert {image["name"] for image in prod["images"]} == {f"billsh/{name}" for name in SERVICES}
    replicas = {entry["name"]: entry["count"] for entry in prod["replicas"]}
    assert replicas["gateway"] == 3
    assert replicas["metering"] == 3


KUSTOMIZE = shutil.which("kustomize")
KUBECTL = shutil.which("kubectl")


def kustomize_build(overlay: str) -> list[dict[str, Any]]:
    directory = str(K8S / "overlays" / overlay)
    if KUSTOMIZE:
        command = [KUSTOMIZE, "build", directory]
    else:
        assert KUBECTL is not None
        command = [KUBECTL, "kustomize", directory]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.mark.skipif(not (KUSTOMIZE or KUBECTL), reason="needs kustomize or kubectl")
def test_k8s_overlays_render() -> None:
    dev = kustomize_build("dev")
    deployments = [doc for doc in dev if doc["kind"] == "Deployment"]
    assert {doc["metadata"]["name"] for doc in deployments} == set(SERVICES)
    assert {doc["spec"]["replicas"] for doc in deployments} == {1}
    assert not [doc for doc in dev if doc["kind"] == "HorizontalPodAutoscaler"]
    assert {doc["metadata"]["namespace"] for doc in dev if doc["kind"] != "Namespace"} == {
        "billing"
    }

    prod = kustomize_build("prod")
    by_key = {(doc["kind"], doc["metadata"]["name"]): doc for doc in prod}
    for name in ("gateway", "metering"):
        assert by_key[("Deployment", name)]["spec"]["replicas"] == 3
        assert by_key[("HorizontalPodAutoscaler", name)]["spec"]["minReplicas"] == 3
    for name in SERVICES:
        image = by_key[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]["image"]
        assert re.fullmatch(rf"billsh/{re.escape(name)}:\d+\.\d+\.\d+", image), image
