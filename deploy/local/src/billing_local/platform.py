"""The whole platform on one machine: the embedded stack and every service as a process.

`make dev` runs `python -m billing_local.platform` (gateway on :3000); the e2e
tests use `Platform` with free ports. The gateway is started last, with the
URL of every other service, and a dev API key is registered through the
gateway's own CLI.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from billing_local._proc import free_port
from billing_local.stack import EmbeddedStack, StackUrls
from billing_local.supervisor import ServiceSpec, ServiceSupervisor

SERVICES: tuple[str, ...] = (
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
"""Every service but the gateway, which starts after them."""

GATEWAY = "gateway"


def module_of(service: str) -> str:
    return "billing_" + service.replace("-", "_")


def url_variable(service: str) -> str:
    return service.upper().replace("-", "_") + "_SERVICE_URL"


@dataclass(frozen=True)
class RunningPlatform:
    stack: StackUrls
    gateway_url: str
    api_key: str
    service_urls: Mapping[str, str]


class Platform:
    """Start the stack, the services and the gateway; stop all of it on exit."""

    def __init__(
        self,
        data_dir: Path,
        *,
        gateway_port: int | None = None,
        first_service_port: int | None = None,
        services: Sequence[str] = SERVICES,
        service_env: Mapping[str, Mapping[str, str]] | None = None,
        api_key: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.gateway_port = gateway_port or free_port()
        self.services = tuple(services)
        self.service_env = dict(service_env or {})
        self.ports = {
            name: (first_service_port + i if first_service_port else free_port())
            for i, name in enumerate(self.services)
        }
        self.api_key = api_key or "sk_test_" + secrets.token_urlsafe(32)
        self.stack = EmbeddedStack(data_dir / "stack")
        self.supervisor: ServiceSupervisor | None = None
        self.running: RunningPlatform | None = None

    def spec(self, name: str) -> ServiceSpec:
        port = self.gateway_port if name == GATEWAY else self.ports[name]
        env = dict(self.service_env.get(name, {}))
        if name == "metering":
            # chdb, the usage store in metering's own process, unless a ClickHouse server is set.
            env.setdefault(
                "CLICKHOUSE_URL",
                os.environ.get("CLICKHOUSE_URL")
                or f"chdb://{(self.data_dir / 'clickhouse').resolve()}",
            )
        return ServiceSpec(name, module_of(name), port, env)

    def start(self) -> RunningPlatform:
        urls = self.stack.start()
        base_env = {**urls.as_env(), "LOG_LEVEL": "INFO"}
        self.supervisor = ServiceSupervisor(base_env, self.data_dir / "logs")
        self._register_api_key(base_env)
        service_urls = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        self.supervisor.start_all([self.spec(name) for name in self.services])
        gateway_env = {url_variable(name): url for name, url in service_urls.items()}
        self.supervisor.start(self.spec(GATEWAY), extra_env=gateway_env)
        self.running = RunningPlatform(
            stack=urls,
            gateway_url=f"http://127.0.0.1:{self.gateway_port}",
            api_key=self.api_key,
            service_urls=service_urls,
        )
        return self.running

    def _register_api_key(self, env: Mapping[str, str]) -> None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                module_of(GATEWAY),
                "create-api-key",
                "--key",
                self.api_key,
                "--name",
                "dev",
            ],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
            timeout=60,
        )

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop_all()
        self.stack.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole bill.sh platform locally.")
    parser.add_argument("--data-dir", type=Path, default=Path(".local"))
    parser.add_argument("--port", type=int, default=3000, help="the gateway's port")
    parser.add_argument("--first-service-port", type=int, default=8101)
    args = parser.parse_args(argv)

    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    key_file = data_dir / "dev-api-key"
    api_key = key_file.read_text().strip() if key_file.exists() else None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())

    with Platform(
        data_dir,
        gateway_port=args.port,
        first_service_port=args.first_service_port,
        api_key=api_key,
    ) as platform:
        print("starting the embedded stack and 18 services...", flush=True)
        running = platform.start()
        key_file.write_text(running.api_key + "\n")
        _seed_demo(running)
        print(
            f"\nbill.sh is running.\n"
            f"  API        {running.gateway_url}/v1   (docs: {running.gateway_url}/docs)\n"
            f"  API key    {running.api_key}   (also in {key_file})\n"
            f"  Kafka      {running.stack.kafka_bootstrap}\n"
            f"  PostgreSQL {running.stack.database_url}\n"
            f"  Redis      {running.stack.redis_url}\n"
            f"  Stripe     {running.stack.stripe_api_base}   (localstripe)\n"
            f"  logs       {data_dir / 'logs'}\n\n"
            f"Try: curl -H 'Authorization: Bearer {running.api_key}' "
            f"{running.gateway_url}/v1/customers\n"
            f"Ctrl-C stops everything.",
            flush=True,
        )
        stop.wait()
        print("\nstopping...", flush=True)
    return 0


def _seed_demo(running: RunningPlatform) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            module_of("demo"),
            "seed",
            "--gateway",
            running.gateway_url,
            "--api-key",
            running.api_key,
        ],
        check=True,
        timeout=120,
    )


if __name__ == "__main__":
    sys.exit(main())
