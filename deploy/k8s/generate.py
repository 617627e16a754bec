"""Write the kustomize manifests of the platform: base/ and overlays/{dev,prod}/.

Kustomize cannot loop, and 18 services by hand would drift; so every manifest here comes
from this file (README.md and billing-secrets.example.yaml are written by hand).

    python deploy/k8s/generate.py           # write the files
    python deploy/k8s/generate.py --check   # exit 1 when a file differs from what it would write
    kubectl kustomize deploy/k8s/overlays/dev | kubectl apply -f -
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from billing_local.generated import generator_main

HERE = Path(__file__).resolve().parent

NAMESPACE = "billing"
PART_OF = "billsh"
CONFIG_MAP = "billing-config"
SECRET = "billing-secrets"  # noqa: S105 - the name of the Secret object, not a secret
IMAGE_PREFIX = "billsh/"
BASE_IMAGE_TAG = "dev"
# The release the prod overlay deploys: bump it and regenerate (or `kustomize edit set image`
# in the deploy job's checkout).
PROD_IMAGE_TAG = "0.1.0"
APP_UID = 10001

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    def manifest(self) -> Manifest:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


DEFAULT_RESOURCES = Resources("100m", "256Mi", "1", "512Mi")
DEV_RESOURCES = Resources("50m", "128Mi", "500m", "384Mi")


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int
    max_replicas: int
    cpu_utilization: int = 70


@dataclass(frozen=True)
class Service:
    name: str
    port: int = 8000
    replicas: int = 1
    resources: Resources = DEFAULT_RESOURCES
    autoscaling: Autoscaling | None = None
    disruption_budget: bool = False
    # Keys of the Secret `billing-secrets` this service reads as environment variables.
    secrets: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def package(self) -> str:
        return "billing_" + self.name.replace("-", "_")

    @property
    def image(self) -> str:
        return IMAGE_PREFIX + self.name

    @property
    def env_prefix(self) -> str:
        return self.name.upper().replace("-", "_")


# The 18 deployable services (ARCHITECTURE.md §1), in the order of its table.
SERVICES: tuple[Service, ...] = (
    Service(
        "gateway",
        port=3000,
        replicas=2,
        resources=Resources("250m", "256Mi", "1", "512Mi"),
        autoscaling=Autoscaling(2, 10),
        disruption_budget=True,
        secrets=("JWT_SECRET",),
    ),
    Service("customers"),
    Service(
        "metering",
        replicas=2,
        resources=Resources("500m", "512Mi", "2", "2Gi"),
        autoscaling=Autoscaling(2, 8),
        notes=(
            "Metering with more than one replica needs a ClickHouse server (CLICKHOUSE_URL in",
            "billing-config): without it metering embeds chdb, which is single-process and",
            "cannot be shared between pods.",
        ),
    ),
    Service("pricing"),
    Service(
        "rating",
        replicas=2,
        resources=Resources("250m", "256Mi", "1", "512Mi"),
        autoscaling=Autoscaling(2, 8),
    ),
    Service("subscriptions"),
    Service("engine"),
    Service("invoicing"),
    Service("contracts"),
    Service("ledger"),
    Service("wallet"),
    Service("payments", secrets=("STRIPE_API_KEY",)),
    Service("dunning"),
    Service("spend-alerts"),
    Service("notifications"),
    Service("audit"),
    Service("reporting", resources=Resources("100m", "256Mi", "1", "1Gi")),
    Service("demo"),
)
GATEWAY = "gateway"
# Services the gateway does not route to: itself, and demo (a client of the public API).
NOT_ROUTED = frozenset({GATEWAY, "demo"})


def by_name(name: str) -> Service:
    return next(service for service in SERVICES if service.name == name)


def config_data() -> dict[str, str]:
    """billing-config: the backends' URLs (in-cluster names) and the gateway's service URLs."""
    gateway = by_name(GATEWAY)
    data = {
        "HTTP_HOST": "0.0.0.0",  # noqa: S104 - a container listens on all its interfaces
        "LOG_LEVEL": "INFO",
        "KAFKA_BOOTSTRAP": "kafka:9092",
        # CockroachDB, insecure as in compose; with certificates move DATABASE_URL to the Secret.
        "DATABASE_URL": "postgresql://root@cockroach:26257/billing?sslmode=disable",
        "REDIS_URL": "redis://redis:6379/0",
        "CLICKHOUSE_URL": "http://clickhouse:8123",
        "TIGERBEETLE_ADDRESSES": "tigerbeetle:3000",
        "STRIPE_API_BASE": "https://api.stripe.com",
        "GATEWAY_URL": f"http://{GATEWAY}:{gateway.port}",
        "GATEWAY_PUBLIC_URL": "https://api.bill.sh",
    }
    for service in SERVICES:
        if service.name not in NOT_ROUTED:
            data[f"{service.env_prefix}_SERVICE_URL"] = f"http://{service.name}:{service.port}"
    return data


def labels(service: Service) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": service.name,
        "app.kubernetes.io/component": "service",
        "app.kubernetes.io/part-of": PART_OF,
    }


def selector(service: Service) -> dict[str, str]:
    return {"app.kubernetes.io/name": service.name}


def health_probe(period: int, timeout: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def deployment(service: Service) -> Manifest:
    env: list[Manifest] = [
        {"name": "HTTP_PORT", "value": str(service.port)},
        {"name": "OTEL_SERVICE_NAME", "value": service.name},
    ]
    env += [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}}
        for key in service.secrets
    ]
    container: Manifest = {
        "name": service.name,
        "image": f"{service.image}:{BASE_IMAGE_TAG}",
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", service.package],
        "ports": [{"name": "http", "containerPort": service.port, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": CONFIG_MAP}}],
        "env": env,
        # Up to 5 minutes for the first start (migrations), then readiness every 5 s and
        # liveness, less eager, every 30 s.
        "startupProbe": health_probe(period=5, timeout=3, failures=60),
        "readinessProbe": health_probe(period=5, timeout=3, failures=3),
        "livenessProbe": health_probe(period=30, timeout=5, failures=4),
        "resources": service.resources.manifest(),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir of the pod's own
            {"name": "home", "mountPath": "/home/billing"},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": service.name, "labels": labels(service)},
        "spec": {
            "replicas": service.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector(service)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels(service),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(service.port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": APP_UID,
                        "runAsGroup": APP_UID,
                        "fsGroup": APP_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": selector(service)},
                        }
                    ],
                    "containers": [container],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {}},
                        {"name": "home", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def k8s_service(service: Service) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service.name, "labels": labels(service)},
        "spec": {
            "selector": selector(service),
            "ports": [
                {"name": "http", "port": service.port, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def autoscaler(service: Service, scaling: Autoscaling) -> Manifest:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": service.name, "labels": labels(service)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": service.name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": scaling.cpu_utilization,
                        },
                    },
                }
            ],
        },
    }


def disruption_budget(service: Service) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": service.name, "labels": labels(service)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(service)}},
    }


def service_documents(service: Service) -> list[Manifest]:
    documents = [deployment(service), k8s_service(service)]
    if service.autoscaling is not None:
        documents.append(autoscaler(service, service.autoscaling))
    if service.disruption_budget:
        documents.append(disruption_budget(service))
    return documents


class _Dumper(yaml.SafeDumper):
    """Safe YAML, with multi-line strings (the overlays' patches) as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


HEADER = (
    "# GENERATED by deploy/k8s/generate.py: do not edit by hand; change the generator and run\n"
    "# `python deploy/k8s/generate.py`.\n"
)


def dump(documents: Sequence[Manifest], notes: Sequence[str] = ()) -> str:
    body = "---\n".join(
        yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
        for document in documents
    )
    comment = "".join(f"# {line}\n" for line in notes)
    return HEADER + ("#\n" + comment if comment else "") + body


def base_files() -> dict[Path, str]:
    files: dict[Path, str] = {
        Path("namespace.yaml"): dump(
            [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}]
        ),
        Path(f"{CONFIG_MAP}.yaml"): dump(
            [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": CONFIG_MAP},
                    "data": config_data(),
                }
            ],
            notes=(
                "Where the backends are: in-cluster Services named kafka, cockroach, redis,",
                "clickhouse and tigerbeetle (run by their operators or charts; not in this base).",
                "Secrets (JWT_SECRET, STRIPE_API_KEY) live in the Secret billing-secrets: see",
                "../billing-secrets.example.yaml.",
            ),
        ),
    }
    for service in SERVICES:
        files[Path(f"{service.name}.yaml")] = dump(service_documents(service), service.notes)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": [path.as_posix() for path in files],
    }
    files[Path("kustomization.yaml")] = dump([kustomization])
    return {Path("base") / path: text for path, text in files.items()}


def json_patch(target: Manifest, operations: list[Manifest]) -> Manifest:
    return {"target": target, "patch": yaml.safe_dump(operations, sort_keys=False)}


def dev_kustomization() -> Manifest:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../../base"],
        "patches": [
            # One replica of everything, with smaller resources.
            json_patch(
                {"kind": "Deployment"},
                [
                    {"op": "add", "path": "/spec/replicas", "value": 1},
                    {
                        "op": "replace",
                        "path": "/spec/template/spec/containers/0/resources",
                        "value": DEV_RESOURCES.manifest(),
                    },
                ],
            ),
            # No autoscaling in dev: the single replica stays single.
            {
                "target": {"kind": "HorizontalPodAutoscaler"},
                "patch": yaml.safe_dump(
                    {
                        "$patch": "delete",
                        "apiVersion": "autoscaling/v2",
                        "kind": "HorizontalPodAutoscaler",
                        "metadata": {"name": "any"},
                    },
                    sort_keys=False,
                ),
            },
            json_patch(
                {"kind": "ConfigMap", "name": CONFIG_MAP},
                [{"op": "replace", "path": "/data/LOG_LEVEL", "value": "DEBUG"}],
            ),
        ],
    }


PROD_REPLICAS = {"gateway": 3, "metering": 3, "demo": 0}


def prod_kustomization() -> Manifest:
    patches = [
        json_patch(
            {"kind": "HorizontalPodAutoscaler", "name": name},
            [{"op": "replace", "path": "/spec/minReplicas", "value": count}],
        )
        for name, count in PROD_REPLICAS.items()
        if by_name(name).autoscaling is not None
    ]
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../../base"],
        "images": [{"name": service.image, "newTag": PROD_IMAGE_TAG} for service in SERVICES],
        "replicas": [{"name": name, "count": count} for name, count in PROD_REPLICAS.items()],
        "patches": patches,
    }


def expected_files() -> dict[Path, str]:
    """Every file this generator owns, relative to deploy/k8s, with its content."""
    files = base_files()
    files[Path("overlays/dev/kustomization.yaml")] = dump(
        [dev_kustomization()],
        notes=("Development: one replica of every service, smaller resources, no HPA.",),
    )
    files[Path("overlays/prod/kustomization.yaml")] = dump(
        [prod_kustomization()],
        notes=(
            f"Production: images at {PROD_IMAGE_TAG}, 3 replicas (and HPA minimum) for gateway",
            "and metering, no demo data loader.",
        ),
    )
    return files


def main(argv: Sequence[str] | None = None) -> int:
    return generator_main(
        argv,
        expected_files,
        description="Write the kustomize manifests of bill.sh.",
        default_root=HERE,
        kind="manifests",
        regenerate="python deploy/k8s/generate.py",
    )


if __name__ == "__main__":
    sys.exit(main())
