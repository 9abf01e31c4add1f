"""The Railway driver's decisions, against Railway's real schema and without a network."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from graphql import GraphQLEnumType, build_client_schema, parse, validate

from app.providers import railway_operations as ops
from app.providers.base import Stopwatch
from app.providers.railway_client import retry_after_seconds
from app.providers.railway_desired import limits_differ, limits_for
from app.providers.railway_status import STATUS_PHASES, Phase, judge_health, poll_delays

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "support" / "railway-schema.json"
SCHEMA = build_client_schema(json.loads(SCHEMA_FILE.read_text())["data"])


@pytest.mark.parametrize("document", ops.ALL_OPERATIONS, ids=lambda d: d.split("(")[0].strip())
def test_every_operation_the_driver_sends_validates_against_railways_schema(
    document: str,
) -> None:
    assert validate(SCHEMA, parse(document)) == []


def test_every_document_in_the_operations_module_is_listed() -> None:
    documents = {v for k, v in vars(ops).items() if k[:2] in ("Q_", "M_")}
    assert documents == set(ops.ALL_OPERATIONS)


def test_the_driver_sends_only_documents_from_the_operations_module() -> None:
    source = (Path(ops.__file__).parent / "container_railway.py").read_text()
    sent = re.findall(r"\.execute\(\s*([^,]+),", source)
    assert sent and all(document.startswith("ops.") for document in sent), sent


def test_every_railway_status_has_a_deliberate_phase() -> None:
    enum = SCHEMA.get_type("DeploymentStatus")
    assert isinstance(enum, GraphQLEnumType)
    assert set(STATUS_PHASES) == set(enum.values)
    assert STATUS_PHASES["SLEEPING"] is Phase.ASLEEP
    assert STATUS_PHASES["NEEDS_APPROVAL"] is Phase.BLOCKED


def test_poll_delays_double_up_to_the_cap_within_the_timeout() -> None:
    assert poll_delays(3, 15, 45) == [3, 6, 12, 15]
    assert sum(poll_delays(3, 15, 300)) <= 300 and len(poll_delays(3, 15, 300)) == 21


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("", None), ("soon", None), ("Thu, 01 Jan 1970 00:01:40 GMT", 40.0)],
)
def test_retry_after_is_read_as_seconds_or_a_date(header: str, seconds: float | None) -> None:
    assert retry_after_seconds(header, now=60.0) == seconds


def test_resources_become_railway_limits() -> None:
    assert limits_for({"cpu": "500m", "memory": "512Mi"}) == {"vCPUs": 0.5, "memoryGB": 0.5}
    assert limits_for({"cpu": "2", "memory": "4Gi"}) == {"vCPUs": 2.0, "memoryGB": 4.0}
    assert limits_for({}) == {}
    assert limits_differ({"vCPUs": 8, "memoryGB": 8}, {"vCPUs": 0.5})
    assert not limits_differ({"vCPUs": 0.5, "memoryGB": 8}, {"vCPUs": 0.5})


@pytest.mark.parametrize(
    ("latest", "active", "healthy"),
    [
        ("SUCCESS", [], True),
        ("SLEEPING", [], True),
        ("BUILDING", ["SUCCESS"], True),
        ("BUILDING", [], False),
        ("FAILED", ["SUCCESS"], False),
        ("CRASHED", [], False),
        ("NEEDS_APPROVAL", ["SUCCESS"], False),
        ("REMOVED", [], False),
    ],
)
def test_health_reads_the_latest_deployment_and_what_still_serves(
    latest: str, active: list[str], healthy: bool
) -> None:
    instance = {
        "source": {"image": "img:1"},
        "latestDeployment": {"id": "new", "status": latest},
        "activeDeployments": [{"id": f"old{i}", "status": s} for i, s in enumerate(active)],
    }
    assert judge_health(Stopwatch(), "svc", instance, "img:1").healthy is healthy
    assert judge_health(Stopwatch(), "svc", instance, "img:2").healthy is False
