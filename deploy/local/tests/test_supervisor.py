from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

import billing_local
from billing_local import ServiceSpec, ServiceStartError, ServiceSupervisor

NewProcesses = Callable[..., list[psutil.Process]]
AssertGone = Callable[[list[psutil.Process]], None]
TESTS_DIR = Path(__file__).resolve().parent


@pytest.fixture
def supervisor(tmp_path: Path, new_processes: NewProcesses) -> Iterator[ServiceSupervisor]:
    # new_processes is torn down after this fixture: it checks that stop_all worked.
    sup = ServiceSupervisor({"PYTHONPATH": str(TESTS_DIR)}, tmp_path / "logs", health_timeout=20)
    with sup:
        yield sup


@pytest.fixture
def spec(free_port: Callable[[], int]) -> Callable[..., ServiceSpec]:
    def make(name: str, **env: str) -> ServiceSpec:
        return ServiceSpec(name=name, module="fake_service", port=free_port(), env=env)

    return make


def health(spec: ServiceSpec) -> dict[str, Any]:
    response = httpx.get(f"http://127.0.0.1:{spec.port}/health", trust_env=False, timeout=5)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_start_kill_restart_stop_all(
    supervisor: ServiceSupervisor,
    spec: Callable[..., ServiceSpec],
    tmp_path: Path,
    assert_gone: AssertGone,
) -> None:
    customers = spec("customers", FAKE_GRANDCHILD="1", FAKE_MARKER="one")
    supervisor.start(customers)
    body = health(customers)
    assert body["pid"] == supervisor.pid("customers")
    assert body["marker"] == "one"
    first = psutil.Process(body["pid"])
    grandchild = psutil.Process(body["grandchild"])
    assert grandchild.is_running()

    supervisor.kill("customers")
    assert not supervisor.is_running("customers")
    assert_gone([first, grandchild])  # the whole process group went

    supervisor.restart("customers", extra_env={"FAKE_MARKER": "two"})
    body = health(customers)
    assert body["pid"] == supervisor.pid("customers") != first.pid
    assert body["marker"] == "two"
    second = psutil.Process(body["pid"])

    supervisor.restart("customers")  # running: stopped first; extra_env is kept
    assert health(customers)["marker"] == "two"
    assert not second.is_running()

    log = (tmp_path / "logs" / "customers.log").read_text()
    assert log.count("starting customers") == 3  # appended, one header per start

    procs = psutil.Process(supervisor.pid("customers")).children(recursive=True)
    procs.append(psutil.Process(supervisor.pid("customers")))
    supervisor.stop_all()
    supervisor.stop_all()  # idempotent
    assert_gone(procs)


def test_kill_with_sigterm(
    supervisor: ServiceSupervisor, spec: Callable[..., ServiceSpec], assert_gone: AssertGone
) -> None:
    svc = spec("gateway")
    supervisor.start(svc)
    proc = psutil.Process(supervisor.pid("gateway"))
    supervisor.kill("gateway", signal.SIGTERM)
    assert_gone([proc])
    supervisor.restart("gateway")
    assert health(svc)["pid"] == supervisor.pid("gateway")


def test_start_all_waits_for_every_service(
    supervisor: ServiceSupervisor, spec: Callable[..., ServiceSpec], assert_gone: AssertGone
) -> None:
    specs = [spec(f"svc{i}") for i in range(4)]
    supervisor.start_all(specs, timeout=30)
    pids = {health(s)["pid"] for s in specs}
    assert pids == {supervisor.pid(s.name) for s in specs}
    procs = [psutil.Process(pid) for pid in pids]
    supervisor.stop_all()
    assert_gone(procs)


def test_a_service_that_exits_fails_fast_with_its_log(
    supervisor: ServiceSupervisor, spec: Callable[..., ServiceSpec]
) -> None:
    with pytest.raises(ServiceStartError, match=r"(?s)exited with code 3.*failing on purpose"):
        supervisor.start(spec("broken", FAKE_EXIT_CODE="3"))


def test_start_all_stops_the_others_when_one_fails(
    supervisor: ServiceSupervisor,
    spec: Callable[..., ServiceSpec],
    new_processes: NewProcesses,
    assert_gone: AssertGone,
) -> None:
    good = spec("good")
    supervisor.start(good)  # started before: not this start_all's business
    specs = [spec("a"), spec("b", FAKE_EXIT_CODE="4"), spec("c")]
    with pytest.raises(ServiceStartError, match="exited with code 4"):
        supervisor.start_all(specs, timeout=30)
    assert not supervisor.is_running("a")
    assert not supervisor.is_running("c")
    assert health(good)["pid"] == supervisor.pid("good")
    assert [p.pid for p in new_processes()] == [supervisor.pid("good")]


def test_an_unhealthy_service_times_out_and_is_killed(
    tmp_path: Path, spec: Callable[..., ServiceSpec], new_processes: NewProcesses
) -> None:
    with ServiceSupervisor(
        {"PYTHONPATH": str(TESTS_DIR)}, tmp_path / "logs", health_timeout=1.5
    ) as sup:
        with pytest.raises(ServiceStartError, match=r"(?s)not healthy within 1.5s.*listening"):
            sup.start(spec("sick", FAKE_HEALTH_STATUS="503"))
        assert not sup.is_running("sick")
        assert new_processes() == []


def test_unknown_service_and_double_start(
    supervisor: ServiceSupervisor, spec: Callable[..., ServiceSpec]
) -> None:
    with pytest.raises(KeyError, match="nope"):
        supervisor.pid("nope")
    svc = spec("twice")
    supervisor.start(svc)
    with pytest.raises(ServiceStartError, match="already running"):
        supervisor.start(svc)


def test_services_die_with_a_killed_supervisor(
    tmp_path: Path, free_port: Callable[[], int], assert_gone: AssertGone
) -> None:
    port = free_port()
    script = f"""
import sys, time
from pathlib import Path
from billing_local import ServiceSpec, ServiceSupervisor
sup = ServiceSupervisor({{"PYTHONPATH": {str(TESTS_DIR)!r}}}, Path({str(tmp_path / "logs")!r}))
sup.start(ServiceSpec("orphan", "fake_service", {port}, {{"FAKE_GRANDCHILD": "1"}}))
print(sup.pid("orphan"), flush=True)
time.sleep(600)
"""
    env = {**os.environ, "PYTHONPATH": str(Path(billing_local.__file__).parent.parent)}
    owner = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert owner.stdout is not None
        service = psutil.Process(int(owner.stdout.readline()))
        grandchild = psutil.Process(health(ServiceSpec("orphan", "x", port))["grandchild"])
        owner.kill()
        owner.wait(timeout=10)
        assert_gone([service, grandchild])
    finally:
        if owner.poll() is None:
            owner.kill()
        owner.communicate()
