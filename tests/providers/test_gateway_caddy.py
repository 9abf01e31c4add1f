"""CaddyGatewayProvider against a real Caddy (scripts/caddy.sh) and real upstreams.

Caddy (the session's, from tests/providers/conftest.py) runs for the whole
session; each test starts from the base config again.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from app.providers.base import ProviderError, TransientProviderError
from app.providers.gateway_caddy import CaddyGatewayProvider, build_route
from tests.support.caddy import CaddyInstance, Upstream, department

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway(caddy: CaddyInstance) -> CaddyGatewayProvider:
    caddy.reset()
    return CaddyGatewayProvider(admin_url=caddy.admin_url, public_url=caddy.public_url)


@pytest.fixture
def upstream() -> Iterator[Callable[[str], Upstream]]:
    started: list[Upstream] = []

    def start(dept: str) -> Upstream:
        started.append(Upstream(dept).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


def get(caddy: CaddyInstance, path: str) -> requests.Response:
    return requests.get(f"{caddy.public_url}{path}", timeout=10)


def raw_get(caddy: CaddyInstance, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", caddy.gateway_port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- create ------------------------------------------------------------------


def test_create_proxies_through_gateway_and_strips_prefix(
    caddy: CaddyInstance, gateway: CaddyGatewayProvider, upstream: Callable[[str], Upstream]
) -> None:
    sales = upstream("sales")

    outputs = gateway.create(department("sales", sales.address))

    assert outputs == {
        "routeId": "dept-sales",
        "url": f"{caddy.public_url}/departments/sales/",
        "upstream": sales.address,
    }
    response = get(caddy, "/departments/sales/hello?x=1")
    assert response.status_code == 200
    assert response.json() == {"dept": "sales", "path": "/hello?x=1"}
    assert get(caddy, "/departments/sales").json()["path"] == "/"
    assert requests.get(outputs["url"], timeout=10).json()["path"] == "/"


def test_unknown_paths_get_the_fallback_404(
    caddy: CaddyInstance, gateway: CaddyGatewayProvider, upstream: Callable[[str], Upstream]
) -> None:
    sales = upstream("sales")
    gateway.create(department("sales", sales.address))

    for path in ("/departments/salesx/hello", "/departments/other/", "/"):
        response = get(caddy, path)
        assert response.status_code == 404, path
        assert response.json() == {"error": "unknown department"}
    # Sent verbatim (requests would normalise the dots away): Caddy cleans the
    # path before matching, so ".." cannot climb out of a department's prefix.
    status, body = raw_get(caddy, "/departments/sales/../other/x")
    assert (status, json.loads(body)) == (404, {"error": "unknown department"})
    assert sales.paths == []


def test_create_twice_leaves_exactly_one_route(
    caddy: CaddyInstance, gateway: CaddyGatewayProvider, upstream: Callable[[str], Upstream]
) -> None:
    context = department("sales", upstream("sales").address)

    first = gateway.create(context)
    second = gateway.create(context)

    assert first == second
    assert caddy.count_id("dept-sales") == 1
    assert get(caddy, "/departments/sales/a").status_code == 200


def test_create_with_new_upstream_replaces_the_route(
    caddy: CaddyInstance, gateway: CaddyGatewayProvider, upstream: Callable[[str], Upstream]
) -> None:
    old, new = upstream("sales-v1"), upstream("sales-v2")
    gateway.create(department("sales", old.address))

    outputs = gateway.create(department("sales", new.address))

    assert outputs["upstream"] == new.address
    assert caddy.count_id("dept-sales") == 1
    assert get(caddy, "/departments/sales/x").json() == {"dept": "sales-v2", "path": "/x"}
    assert old.paths == []


def test_a_railway_domain_is_proxied_over_tls_with_its_own_host(
    caddy: CaddyInstance, gateway: CaddyGatewayProvider
) -> None:
    # Railway serves each service domain over HTTPS on a shared edge; plain HTTP to :443
    # with the gateway's Host header would never reach the service.
    domain = "dept-sales-production-ab12.up.railway.app"
    gateway.create(department("sales", f"{domain}:443"))

    route = caddy.admin("GET", "/id/dept-sales").json()
    [proxy] = [h for h in route["handle"] if h["handler"] == "reverse_proxy"]
    assert proxy["transport"] == {"protocol": "http", "tls": {"server_name": domain}}
    assert proxy["headers"] == {"request": {"set": {"Host": [domain]}}}


def test_create_collapses_duplicates_left_by_a_race(
    caddy: CaddyInstance, gateway: CaddyGatewayProvider, upstream: Callable[[str], Upstream]
) -> None:
    context = department("sales", upstream("sales").address)
    gateway.create(context)
    # Caddy 2.6.2 accepts a second object with the same @id, as two racing
    # creates would leave behind.
    route = caddy.admin("GET", "/id/dept-sales").json()
    caddy.admin("PUT", "/config/apps/http/servers/gateway/routes/0", json=route).raise_for_status()
    assert caddy.count_id("dept-sales") == 2

    gateway.create(context)

    assert caddy.count_id("dept-sales") == 1


def test_create_works_when_routes_array_is_empty(
    caddy: CaddyInstance, gateway: CaddyGatewayProvider, upstream: Callable[[str], Upstream]
) -> None:
    # Caddy answers PUT routes/0 on an empty array with a 500; create must not.
    caddy.admin("DELETE", "/id/gateway-fallback").raise_for_status()

    gateway.create(department("sales", upstream("sales").address))

    assert get(caddy, "/departments/sales/ok").json()["path"] == "/ok"


def test_create_without_upstream_is_permanent_error(gateway: CaddyGatewayProvider) -> None:
    with pytest.raises(ProviderError, match="upstream") as info:
        gateway.create(department("sales"))
    assert not isinstance(info.value, TransientProviderError)


@pytest.mark.parametrize(
    "bad_upstream",
    [
        "",
        "localhost",
        "localhost:0",
        "localhost:70000",
        "{http.request.header.X}:80",
        "a b:80",
        8080,
    ],
)
def test_create_refuses_malformed_upstream(
    caddy: CaddyInstance, gateway: CaddyGatewayProvider, bad_upstream: object
) -> None:
    context = department("sales")
    context.resources["deploy_container"] = {"upstream": bad_upstream}

    with pytest.raises(ProviderError, match="invalid upstream"):
        gateway.create(context)
    assert caddy.count_id("dept-sales") == 0


@pytest.mark.parametrize(
    "bad_id", ["Sales", "s", "sales/../admin", "sales\n", "-sales", "a" * 32, "sales_x", ""]
)
def test_invalid_department_ids_are_refused_everywhere(
    caddy: CaddyInstance, gateway: CaddyGatewayProvider, bad_id: str
) -> None:
    before = caddy.config()

    for operation in (gateway.create, gateway.delete, gateway.check):
        with pytest.raises(ProviderError, match="invalid departmentId"):
            operation(department(bad_id, "127.0.0.1:9"))

    assert caddy.config() == before


# -- delete ------------------------------------------------------------------


def test_delete_removes_route_and_is_idempotent(
    caddy: CaddyInstance, gateway: CaddyGatewayProvider, upstream: Callable[[str], Upstream]
) -> None:
    sales = upstream("sales")
    gateway.create(department("sales", sales.address))
    assert get(caddy, "/departments/sales/before").status_code == 200

    gateway.delete(department("sales"))  # nothing but the id

    assert caddy.count_id("dept-sales") == 0
    response = get(caddy, "/departments/sales/after")
    assert response.status_code == 404
    assert response.json() == {"error": "unknown department"}
    assert sales.paths == ["/before"]
    gateway.delete(department("sales"))


def test_delete_removes_every_duplicate(
    caddy: CaddyInstance, gateway: CaddyGatewayProvider, upstream: Callable[[str], Upstream]
) -> None:
    gateway.create(department("sales", upstream("sales").address))
    route = caddy.admin("GET", "/id/dept-sales").json()
    caddy.admin("PUT", "/config/apps/http/servers/gateway/routes/0", json=route).raise_for_status()

    gateway.delete(department("sales"))

    assert caddy.count_id("dept-sales") == 0


def test_delete_against_something_that_is_not_caddy_admin_fails(caddy: CaddyInstance) -> None:
    # The gateway port answers 404 too, but that must not pass for "route absent".
    wrong = CaddyGatewayProvider(admin_url=caddy.public_url, public_url=caddy.public_url)

    with pytest.raises(ProviderError, match="404"):
        wrong.delete(department("sales"))


# -- check -------------------------------------------------------------------


def test_check_follows_the_route(
    caddy: CaddyInstance, gateway: CaddyGatewayProvider, upstream: Callable[[str], Upstream]
) -> None:
    sales = upstream("sales")
    context = department("sales", sales.address)

    missing = gateway.check(context)
    gateway.create(context)
    present = gateway.check(context)
    by_id_only = gateway.check(department("sales"))
    stale = gateway.check(department("sales", "127.0.0.1:9"))
    gateway.delete(context)
    deleted = gateway.check(context)

    assert (missing.name, missing.healthy) == ("gateway_route", False)
    assert present.healthy, present.detail
    assert present.data == {"routeId": "dept-sales", "upstreams": [sales.address]}
    assert present.latency_ms >= 0
    assert by_id_only.healthy
    assert not stale.healthy
    assert "expected 127.0.0.1:9" in stale.detail
    assert not deleted.healthy
    assert "missing" in deleted.detail


def test_a_route_made_without_the_body_guard_is_unhealthy_until_created_again(
    caddy: CaddyInstance, gateway: CaddyGatewayProvider, upstream: Callable[[str], Upstream]
) -> None:
    """A route an older orchestrator made streams bodies to the agent; the check
    finds it (so the drift sweep repairs it) and create replaces it in place."""
    sales = upstream("sales")
    context = department("sales", sales.address)
    old = build_route("sales", sales.address)
    for option in ("buffer_requests", "max_buffer_size"):
        old["handle"][-1].pop(option)
    caddy.admin("PUT", "/config/apps/http/servers/gateway/routes/0", json=old).raise_for_status()

    before = gateway.check(context)
    gateway.create(context)
    after = gateway.check(context)

    assert not before.healthy
    assert "unbuffered" in before.detail
    assert after.healthy, after.detail
    assert caddy.count_id("dept-sales") == 1
    assert get(caddy, "/departments/sales/x").json()["path"] == "/x"


# -- the admin API failing -----------------------------------------------------


def test_admin_api_down_is_transient() -> None:
    down = CaddyGatewayProvider(
        admin_url=f"http://127.0.0.1:{unused_port()}", public_url="http://127.0.0.1:1"
    )
    context = department("sales", "127.0.0.1:9")

    with pytest.raises(TransientProviderError):
        down.create(context)
    with pytest.raises(TransientProviderError):
        down.delete(context)
    result = down.check(context)
    assert not result.healthy
    assert "admin API" in result.detail


def test_admin_api_answering_5xx_is_transient(
    caddy: CaddyInstance, gateway: CaddyGatewayProvider
) -> None:
    # A real 502: the "admin API" sits behind a gateway route whose upstream is gone.
    gateway.create(department("broken", f"127.0.0.1:{unused_port()}"))
    behind_proxy = CaddyGatewayProvider(
        admin_url=f"{caddy.public_url}/departments/broken", public_url=caddy.public_url
    )

    with pytest.raises(TransientProviderError, match="502"):
        behind_proxy.create(department("sales", "127.0.0.1:9"))


# -- several departments -------------------------------------------------------


def test_two_departments_coexist(
    caddy: CaddyInstance, gateway: CaddyGatewayProvider, upstream: Callable[[str], Upstream]
) -> None:
    sales, hr = upstream("sales"), upstream("hr-team")
    gateway.create(department("sales", sales.address))
    gateway.create(department("hr-team", hr.address))

    assert get(caddy, "/departments/sales/q").json() == {"dept": "sales", "path": "/q"}
    assert get(caddy, "/departments/hr-team/q").json() == {"dept": "hr-team", "path": "/q"}

    gateway.delete(department("sales"))

    assert get(caddy, "/departments/sales/q").status_code == 404
    assert get(caddy, "/departments/hr-team/q").json()["dept"] == "hr-team"
    assert gateway.check(department("hr-team", hr.address)).healthy


# -- scripts/caddy.sh ------------------------------------------------------------


def test_script_start_is_idempotent_and_status_reports(caddy: CaddyInstance) -> None:
    again = caddy.script("start")
    status = caddy.script("status")

    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    assert status.returncode == 0
    assert "running" in status.stdout


def test_admin_socket_missing_is_transient(tmp_path: Path) -> None:
    # Caddy restarting: its socket is gone for a moment; the step must retry.
    down = CaddyGatewayProvider(
        admin_url=f"unix://{tmp_path}/admin.sock", public_url="http://127.0.0.1:1"
    )
    with pytest.raises(TransientProviderError):
        down.create(department("sales", "127.0.0.1:9"))
    assert "admin API" in down.check(department("sales")).detail
