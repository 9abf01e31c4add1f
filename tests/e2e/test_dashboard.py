"""The dashboard in a real browser (Debian's headless Chromium, driven by Playwright)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from tests.conftest import API_PORT, Stack, department_payload, make_token, new_department_id
from tests.support import stack

playwright_api = pytest.importorskip("playwright.sync_api")

API = f"http://127.0.0.1:{API_PORT}"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = stack.ROOT / "test-artifacts"
LIVE_TIMEOUT_MS = 150_000


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_api.Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail("chromium is missing: apt-get install -y chromium chromium-driver")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser: playwright_api.Browser) -> Iterator[playwright_api.Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.problems = problems  # type: ignore[attr-defined]
    yield page
    context.close()


def sign_in(page: playwright_api.Page, token: str) -> None:
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#token-input", token)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#content:not([hidden])")


def screenshot(page: playwright_api.Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def provision(token: str, department_id: str | None = None) -> tuple[str, str]:
    payload = department_payload(department_id, workflows=["email", "database"])
    response = requests.post(
        f"{API}/api/provision-department",
        json=payload,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["dashboardUrl"] == f"{API}/dashboard/{payload['departmentId']}"
    return payload["departmentId"], body["dashboardUrl"]


def test_department_page_follows_a_provisioning_live_then_deprovisions(
    live_stack: Stack, app: Flask, page: playwright_api.Page, faults: Any
) -> None:
    token = make_token(app)
    # Workflows take a few seconds here, so the page surely joins a running job.
    department_id = new_department_id()
    faults.arm(department_id, "workflows.create", mode="delay", seconds=6, times=1)
    department_id, dashboard_url = provision(token, department_id)

    response = page.goto(dashboard_url)
    assert response is not None and response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    sign_in(page, token)

    # Followed over the stream while it runs, never reloaded: a marker set on the
    # window survives only if the page stays the same document.
    page.evaluate("window.__sameDocument = true")
    page.wait_for_selector('#live[data-live="live"]', timeout=30_000)
    page.wait_for_selector(
        '#steps li[data-step="deploy_workflows"][data-status="in_progress"]', timeout=30_000
    )
    assert page.get_attribute("#job-status", "data-status") == "deploying_workflows"
    page.wait_for_selector('#live[data-live="ended"]', timeout=LIVE_TIMEOUT_MS)
    assert page.get_attribute("#job-status", "data-status") == "completed"
    assert page.evaluate("window.__sameDocument") is True

    assert page.text_content("#progress-label") == "100%"
    statuses = page.eval_on_selector_all(
        "#steps li:not([hidden])", "nodes => nodes.map(n => n.dataset.status)"
    )
    assert statuses and set(statuses) == {"completed"}, statuses
    assert f"department {department_id} is ACTIVE" in page.text_content("#log-tail")
    page.wait_for_selector("#health-rows tr", timeout=60_000)
    page.wait_for_selector('#health-overall[data-status="healthy"]', timeout=60_000)
    latencies = page.eval_on_selector_all(
        "#health-rows td.num", "cells => cells.map(c => c.textContent)"
    )
    assert latencies and all(text.endswith(" ms") for text in latencies)

    # The token stays in this tab's session storage, out of every URL.
    assert token not in page.url
    assert page.evaluate("sessionStorage.getItem('po.dashboard.token')") == token
    screenshot(page, "dashboard-department.png")
    assert page.problems == []  # type: ignore[attr-defined]

    # An admin may deprovision, after typing the department id.
    page.click("#deprovision")
    page.wait_for_selector("#confirm-dialog[open]")
    assert page.is_disabled("#confirm-go")
    page.fill("#confirm-input", department_id)
    page.click("#confirm-go")
    page.wait_for_selector('#job-kind:text("deprovision")', timeout=30_000)
    page.wait_for_selector('#live[data-live="ended"]', timeout=LIVE_TIMEOUT_MS)
    assert page.get_attribute("#job-status", "data-status") == "completed"
    assert f"department {department_id} deprovisioned" in page.text_content("#log-tail")
    screenshot(page, "dashboard-deprovisioned.png")


def test_fleet_page_lists_and_filters_departments(
    live_stack: Stack, app: Flask, page: playwright_api.Page
) -> None:
    token = make_token(app)
    department_id, _ = provision(token)
    page.goto(f"{API}/dashboard")
    sign_in(page, token)
    row = f'#fleet-rows tr[data-department-id="{department_id}"]'
    page.wait_for_selector(row)

    page.select_option("#status-filter", "FAILED")
    page.wait_for_selector(row, state="detached")
    assert "status=FAILED" in page.url

    page.select_option("#status-filter", "")
    page.wait_for_selector(row)
    checking = page.locator("#fleet-rows td.health", has_text="checking")
    playwright_api.expect(checking).to_have_count(0, timeout=60_000)
    link = page.get_attribute(f"{row} a", "href")
    assert link == f"/dashboard/{department_id}"
    # The original service's targets open the page, with recent provisioning times.
    page.wait_for_selector("#kpis:not([hidden])")
    assert page.inner_text("#kpi-success .kpi-value").endswith("%")
    assert page.inner_text("#kpi-average .kpi-value").endswith(("s", "min"))
    assert page.inner_text("#kpi-rollback .kpi-value").endswith("%")
    assert int(page.inner_text("#kpi-peak .kpi-value")) >= 1
    assert page.locator("#recent-chart rect.bar").count() >= 1
    screenshot(page, "dashboard-fleet.png")
    assert page.problems == []  # type: ignore[attr-defined]


def test_department_token_sees_only_its_department_and_no_deprovision_button(
    live_stack: Stack, app: Flask, page: playwright_api.Page
) -> None:
    admin = make_token(app)
    department_id, dashboard_url = provision(admin)
    page.goto(dashboard_url)
    sign_in(page, make_token(app, role="department", department_id=department_id))
    page.wait_for_selector("#job-id:not(:text('—'))")
    assert page.is_hidden("#admin-actions")

    page.goto(f"{API}/dashboard/zz-someone-else")
    page.wait_for_selector("#page-error:not([hidden])")
    assert "another department" in page.text_content("#page-error")


def test_a_refused_token_asks_to_sign_in_again(
    live_stack: Stack, page: playwright_api.Page
) -> None:
    page.goto(f"{API}/dashboard")
    page.fill("#token-input", "not.a.token")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:not([hidden])")
    assert page.is_hidden("#content")
    assert page.evaluate("sessionStorage.getItem('po.dashboard.token')") is None
