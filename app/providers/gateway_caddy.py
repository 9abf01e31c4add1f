"""API gateway: one Caddy reverse-proxy route per department, via Caddy's admin API.

How the routes are laid out (see config/caddy/base.json, run by scripts/caddy.sh):

* Caddy answers a request that matches no route with an empty 200, so the base
  config ends the ``gateway`` server's ``routes`` with a catch-all route
  (``"@id": "gateway-fallback"``) answering 404 ``{"error":"unknown department"}``.
* ``POST .../routes`` appends, which would put a department route after the
  catch-all where it is never reached. Department routes are therefore inserted
  at the front with ``PUT .../routes/0``. Their relative order does not matter:
  ``/departments/a/*`` never matches ``/departments/ab/...``, so only "before
  the catch-all" counts.
* Every department route carries ``"@id": "dept-<departmentId>"`` so it is
  addressed as ``/id/dept-<departmentId>`` wherever it sits: PATCH replaces it
  in place, DELETE removes it.
* Caddy 2.6.2 accepts duplicate ``@id`` values and ``/id/`` then reaches only
  one copy. Its ETag (which would make read-then-insert atomic with If-Match)
  arrives as an HTTP trailer that ``requests`` does not expose, so instead
  ``create`` removes any extra copies it finds and ``delete`` repeats until
  Caddy reports the id unknown.
* The route strips ``/departments/<departmentId>`` before proxying, so the
  department's service sees ``/hello`` for ``/departments/<id>/hello``.
* The route reads a request's body (up to the agent's limit) before it opens a
  connection to the department: see ``body_guard``.
"""

from __future__ import annotations

import re
from typing import Any

import requests

from app.providers import base
from app.providers.base import (
    CheckResult,
    DepartmentContext,
    ProviderError,
    Stopwatch,
)
from app.providers.http import request
from app.providers.unix_http import session_for

SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# host:port or [v6]:port; braces are excluded on purpose because Caddy would
# expand "{...}" placeholders in "dial", letting a request pick its upstream.
UPSTREAM = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)"
    r":(\d{1,5})"
)
UNKNOWN_ID_MARKER = "unknown object ID"
# The agent refuses larger bodies anyway (department_agent/serve.py's
# max_request_body_size; a unit test keeps the two equal).
REQUEST_BODY_LIMIT = 65536
# Duplicates only arise from racing creates; more than this means something
# keeps re-adding the route and looping further would not help.
MAX_COPIES = 10


def route_id_for(department_id: str) -> str:
    return f"dept-{checked_department_id(department_id)}"


def checked_department_id(department_id: str) -> str:
    """The id is pasted into admin-API URLs, @id values and route paths."""
    return base.checked_department_id(department_id)


def checked_upstream(upstream: Any) -> str:
    match = UPSTREAM.fullmatch(upstream) if isinstance(upstream, str) else None
    if match is None or not 1 <= int(match.group(1)) <= 65535:
        raise ProviderError(f"invalid upstream {upstream!r}; expected 'host:port'")
    return upstream


def upstream_hint(context: DepartmentContext) -> Any:
    """The deployed container's "host:port", or None when the context lacks it."""
    return (context.resources.get("deploy_container") or {}).get("upstream")


def proxy_handler(upstream: str) -> dict[str, Any]:
    """A named host on port 443 (a Railway service domain) is an HTTPS endpoint behind a
    shared edge: it needs TLS with that name and that name as Host to reach the service."""
    handler: dict[str, Any] = {"handler": "reverse_proxy", "upstreams": [{"dial": upstream}]}
    host, _, port = upstream.rpartition(":")
    if port == "443" and not host.startswith("[") and not host.replace(".", "").isdigit():
        handler["transport"] = {"protocol": "http", "tls": {"server_name": host}}
        handler["headers"] = {"request": {"set": {"Host": [host]}}}
    return handler


def body_guard() -> dict[str, Any]:
    """Caddy streams a request's body to the upstream as it arrives, so a client
    sending its body a byte at a time would hold one of the agent's connections
    (32 in all) for as long as it liked: a few dozen such requests, from anyone,
    and the department stops answering. So the proxy reads the body first, up to
    one byte past the agent's limit: a body the agent accepts reaches it whole, and
    a longer one reaches it with enough in hand for its 413 at once. Slow clients
    stay in Caddy, whose server read timeouts (config/caddy/*.json) cut them off.

    ``buffer_requests``/``max_buffer_size`` are the names Caddy 2.6.2 (Debian's
    package) knows; 2.6.4 deprecated them for ``request_buffers``, so a newer
    Caddy means revisiting this."""
    return {"buffer_requests": True, "max_buffer_size": REQUEST_BODY_LIMIT + 1}


def build_route(department_id: str, upstream: str) -> dict[str, Any]:
    prefix = f"/departments/{department_id}"
    return {
        "@id": route_id_for(department_id),
        "match": [{"path": [prefix, f"{prefix}/*"]}],
        "handle": [
            {"handler": "rewrite", "strip_path_prefix": prefix},
            {**proxy_handler(upstream), **body_guard()},
        ],
        # Nothing after a department route may answer the same request.
        "terminal": True,
    }


def has_body_guard(route: dict[str, Any]) -> bool:
    """Whether the route buffers bodies as ``build_route`` makes it (routes made
    before the guard existed do not, and ``check`` says so, so drift repairs them)."""
    proxies = [h for h in route.get("handle", []) if h.get("handler") == "reverse_proxy"]
    guard = body_guard().items()
    return bool(proxies) and all(guard <= proxy.items() for proxy in proxies)


def route_upstreams(route: dict[str, Any]) -> list[str]:
    return [
        upstream.get("dial", "")
        for handler in route.get("handle", [])
        if handler.get("handler") == "reverse_proxy"
        for upstream in handler.get("upstreams", [])
    ]


def is_unknown_id(response: requests.Response) -> bool:
    # A bare 404 could come from a wrong admin_url (some other web server);
    # only Caddy's own answer proves the route is absent.
    return response.status_code == 404 and UNKNOWN_ID_MARKER in response.text


class CaddyGatewayProvider:
    """Publishes each department at ``<public_url>/departments/<id>/``."""

    name = "gateway"

    def __init__(
        self,
        *,
        admin_url: str,
        public_url: str,
        server_name: str = "gateway",
        session: requests.Session | None = None,
    ) -> None:
        if not SERVER_NAME.fullmatch(server_name):
            raise ValueError(f"invalid Caddy server name {server_name!r}")
        # ``unix:///path`` (the default, see unix_http) or an http(s) URL.
        own_session, self.admin_url = session_for(admin_url)
        self.public_url = public_url.rstrip("/")
        self.server_name = server_name
        self._session = session or own_session

    # -- Provider interface -------------------------------------------------

    def create(self, context: DepartmentContext) -> dict[str, Any]:
        department_id = checked_department_id(context.department_id)
        upstream = upstream_hint(context)
        if upstream is None:
            raise ProviderError(
                "no upstream: resources.deploy_container.upstream is missing; "
                "deploy the container first"
            )
        route = build_route(department_id, checked_upstream(upstream))
        self._upsert(route)
        return {
            "routeId": route["@id"],
            "url": f"{self.public_url}/departments/{department_id}/",
            "upstream": upstream,
        }

    def delete(self, context: DepartmentContext) -> None:
        route_id = route_id_for(context.department_id)
        for _ in range(MAX_COPIES):
            if not self._delete_one(route_id):
                return
        raise ProviderError(f"route {route_id} still present after {MAX_COPIES} deletes")

    def check(self, context: DepartmentContext) -> CheckResult:
        watch = Stopwatch()
        route_id = route_id_for(context.department_id)
        try:
            copies = self._copies(route_id)
        except ProviderError as exc:
            return CheckResult("gateway_route", False, watch.elapsed_ms, f"admin API: {exc}")
        healthy, detail = self._judge(route_id, copies, upstream_hint(context))
        data = {"routeId": route_id, "upstreams": [u for r in copies for u in route_upstreams(r)]}
        return CheckResult("gateway_route", healthy, watch.elapsed_ms, detail, data)

    # -- admin API ------------------------------------------------------------

    @property
    def _routes_path(self) -> str:
        return f"/config/apps/http/servers/{self.server_name}/routes"

    def _admin(
        self,
        method: str,
        path: str,
        *,
        allow_status: frozenset[int] = frozenset(),
        body: Any = None,
    ) -> requests.Response:
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        return request(
            self._session, method, f"{self.admin_url}{path}", allow_status=allow_status, **kwargs
        )

    def _routes(self) -> list[dict[str, Any]] | None:
        """The server's routes; None when the server has no ``routes`` key at all."""
        routes = self._admin("GET", self._routes_path).json()
        if routes is not None and not isinstance(routes, list):
            raise ProviderError(f"{self._routes_path} is not an array: {routes!r:.200}")
        return routes

    def _copies(self, route_id: str) -> list[dict[str, Any]]:
        return [r for r in self._routes() or [] if r.get("@id") == route_id]

    def _upsert(self, route: dict[str, Any]) -> None:
        routes = self._routes()
        copies = sum(1 for r in routes or [] if r.get("@id") == route["@id"])
        for _ in range(copies - 1):
            self._delete_one(route["@id"])
        if copies and self._replace(route):
            return
        self._insert(route, routes)

    def _replace(self, route: dict[str, Any]) -> bool:
        """PATCH the route in place; False if it vanished since we looked."""
        response = self._admin(
            "PATCH", f"/id/{route['@id']}", allow_status=frozenset({404}), body=route
        )
        if response.ok:
            return True
        if is_unknown_id(response):
            return False
        raise ProviderError(f"PATCH /id/{route['@id']} answered 404: {response.text[:300]}")

    def _insert(self, route: dict[str, Any], routes: list[dict[str, Any]] | None) -> None:
        # Caddy 2.6.2 answers PUT .../routes/0 on an empty array with a 500
        # ("index out of bounds"), which would look transient and be retried
        # forever, so an empty or missing array is created/appended instead.
        if routes:
            self._admin("PUT", f"{self._routes_path}/0", body=route)
        elif routes is None:
            self._admin("POST", self._routes_path, body=[route])
        else:
            self._admin("POST", self._routes_path, body=route)

    def _delete_one(self, route_id: str) -> bool:
        """Delete one copy of the route; False if there was none."""
        response = self._admin("DELETE", f"/id/{route_id}", allow_status=frozenset({404}))
        if response.ok:
            return True
        if is_unknown_id(response):
            return False
        raise ProviderError(f"DELETE /id/{route_id} answered 404: {response.text[:300]}")

    @staticmethod
    def _judge(
        route_id: str, copies: list[dict[str, Any]], expected_upstream: Any
    ) -> tuple[bool, str]:
        if not copies:
            return False, f"route {route_id} is missing"
        if len(copies) > 1:
            return False, f"route {route_id} is present {len(copies)} times; re-run create"
        upstreams = route_upstreams(copies[0])
        if expected_upstream is not None and upstreams != [expected_upstream]:
            return False, f"route {route_id} proxies to {upstreams}, expected {expected_upstream}"
        if not has_body_guard(copies[0]):
            return False, f"route {route_id} streams request bodies unbuffered; re-run create"
        return True, f"route {route_id} proxies to {', '.join(upstreams)}"
