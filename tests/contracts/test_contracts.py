"""The checked-in contracts match the event models, and every fact is audited."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from billing_audit.events import NOT_AUDITED

ROOT = Path(__file__).resolve().parents[2]


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "contracts_generate", ROOT / "contracts/generate.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["contracts_generate"] = module
    spec.loader.exec_module(module)
    return module


generate = _load_generator()


def test_checked_in_contracts_match_the_models() -> None:
    assert generate.drift() == [], "run: python contracts/generate.py"


def test_every_service_is_discovered() -> None:
    assert len(generate.service_names()) == 18


def test_every_fact_topic_is_audited_or_left_out_with_a_reason() -> None:
    contracts = generate.collect()
    assert contracts, "no topics found"
    for name, contract in contracts.items():
        if contract.topic.kind == "fact" and name not in NOT_AUDITED:
            assert "audit" in contract.consumers, f"{name} is not in billing_audit.events.CONSUMES"
    for name, reason in NOT_AUDITED.items():
        assert name in contracts, f"NOT_AUDITED names {name}, which nobody produces"
        assert "audit" not in contracts[name].consumers
        assert reason


def test_a_schema_describes_the_envelope_and_its_data() -> None:
    schema = json.loads(
        (ROOT / "contracts/schemas/billing.customers.customer_created.json").read_text()
    )
    assert set(schema["required"]) >= {
        "id",
        "type",
        "source",
        "time",
        "subject",
        "tenantid",
        "data",
    }
    data_ref = schema["properties"]["data"]["$ref"].split("/")[-1]
    assert "customer_id" in schema["$defs"][data_ref]["properties"]


def test_drift_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    monkeypatch.setattr(generate, "SCHEMAS_DIR", schemas)
    monkeypatch.setattr(generate, "ASYNCAPI_PATH", tmp_path / "asyncapi.yaml")
    monkeypatch.setattr(generate, "ROOT", tmp_path)
    (schemas / "billing.nobody.produces_this.json").write_text("{}")
    problems = generate.drift()
    assert "schemas/billing.nobody.produces_this.json belongs to no topic" in problems
    assert "asyncapi.yaml is out of date" in problems
