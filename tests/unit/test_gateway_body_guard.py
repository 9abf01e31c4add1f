"""The gateway's body guard as data: what a department route must carry so a slow
client stays in Caddy (tests/providers/test_gateway_slow_clients.py attacks it)."""

from __future__ import annotations

import copy

from app.providers.gateway_caddy import REQUEST_BODY_LIMIT, build_route, has_body_guard
from department_agent import serve


def test_the_gateway_caps_bodies_at_the_agents_own_limit() -> None:
    assert serve.SERVER_SETTINGS["max_request_body_size"] == REQUEST_BODY_LIMIT


def test_a_built_route_buffers_what_the_agent_accepts_before_it_proxies() -> None:
    route = build_route("sales", "127.0.0.1:8001")
    proxy = route["handle"][-1]

    assert proxy["handler"] == "reverse_proxy"
    assert proxy["buffer_requests"] is True
    assert proxy["max_buffer_size"] == REQUEST_BODY_LIMIT + 1
    assert has_body_guard(route)


def test_a_route_without_the_buffering_or_with_a_smaller_buffer_is_not_guarded() -> None:
    route = build_route("sales", "127.0.0.1:8001")
    streaming = copy.deepcopy(route)
    streaming["handle"][-1]["buffer_requests"] = False
    unset = copy.deepcopy(route)
    del unset["handle"][-1]["buffer_requests"]
    smaller = copy.deepcopy(route)
    smaller["handle"][-1]["max_buffer_size"] = 1024
    no_proxy = copy.deepcopy(route)
    no_proxy["handle"] = no_proxy["handle"][:1]

    assert not any(has_body_guard(r) for r in (streaming, unset, smaller, no_proxy))


def test_a_railway_route_is_guarded_too() -> None:
    assert has_body_guard(build_route("sales", "sales-production.up.railway.app:443"))
