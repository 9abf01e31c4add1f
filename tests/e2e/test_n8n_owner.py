"""n8n's owner password is generated, not the fixed development default (issue 9, item 4)."""

from __future__ import annotations

import uuid

import requests

from scripts.n8n_setup import DEFAULT_EMAIL, LEGACY_PASSWORD, PASSWORD_FILE


def _login(base_url: str, password: str) -> int:
    session = requests.Session()
    session.headers["browser-id"] = str(uuid.uuid4())
    body = {"emailOrLdapLoginId": DEFAULT_EMAIL, "password": password}
    return session.post(f"{base_url}/rest/login", json=body, timeout=15).status_code


def test_the_fixed_password_no_longer_opens_n8n(n8n_api_key: str, test_env: dict[str, str]) -> None:
    base_url = test_env["N8N_URL"]
    assert _login(base_url, LEGACY_PASSWORD) != 200
    assert PASSWORD_FILE.stat().st_mode & 0o777 == 0o600
    assert _login(base_url, PASSWORD_FILE.read_text().strip()) == 200
