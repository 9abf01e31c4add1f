"""The department's configuration rules, as the domain owns them (no stack)."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.department import (
    ConfigRules,
    DepartmentConfig,
    InvalidConfig,
    is_department_id,
)
from app.providers.base import ProviderError, checked_department_id

RULES = ConfigRules(regions=("us-east", "eu-west"))


def payload(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "departmentId": "hr-1",
        "departmentName": "Human Resources",
        "businessType": "internal_services",
        "workflows": ["email", "database"],
        "dataRetention": "90d",
        "region": "us-east",
        "resources": {"cpu": "0.5", "memory": "512Mi"},
        "adminEmail": "admin@example.com",
        "googleWorkspaceDomain": "example.com",
        "enabledTools": ["gmail", "database_query"],
    }
    return {**base, **overrides}


@pytest.mark.parametrize("value", ["hr", "hr-1", "a" + "b" * 30, "sales-east-2"])
def test_valid_department_ids(value: str) -> None:
    assert is_department_id(value)
    assert checked_department_id(value) == value


@pytest.mark.parametrize(
    "value", ["h", "HR", "1hr", "hr\n", "hr_1", "a" * 32, "hr:x", "../hr", "", None, 7]
)
def test_invalid_department_ids_are_refused_by_the_domain_and_every_provider(value: object) -> None:
    assert not is_department_id(value)
    with pytest.raises(ProviderError):
        checked_department_id(value)


def test_a_valid_configuration_parses_into_a_typed_value() -> None:
    config = DepartmentConfig.parse(payload(), RULES)
    assert config.department_id == "hr-1"
    assert config.workflows == ("email", "database")
    assert (config.cpu, config.memory) == ("0.5", "512Mi")
    assert config.custom_config == {}
    assert config.scopes == ["tools:database_query", "tools:gmail"]


def test_errors_are_per_field_and_the_rules_come_from_the_deployment() -> None:
    with pytest.raises(InvalidConfig) as caught:
        DepartmentConfig.parse(
            payload(region="ap-southeast", dataRetention="11y", surprise=1), RULES
        )
    assert set(caught.value.errors) == {"region", "dataRetention", "surprise"}
    allowed = ConfigRules(regions=("ap-southeast",))
    assert DepartmentConfig.parse(payload(region="ap-southeast"), allowed).region == "ap-southeast"


def test_callback_urls_to_metadata_or_private_hosts_are_refused_unless_allowed() -> None:
    with pytest.raises(InvalidConfig) as caught:
        DepartmentConfig.parse(payload(callbackUrl="http://169.254.169.254/x"), RULES)
    assert "callbackUrl" in caught.value.errors
    private = payload(callbackUrl="http://10.0.0.5/hook")
    with pytest.raises(InvalidConfig):
        DepartmentConfig.parse(private, RULES)
    lenient = ConfigRules(regions=RULES.regions, allow_private_callbacks=True)
    assert DepartmentConfig.parse(private, lenient).callback_url == "http://10.0.0.5/hook"
