"""openapi.yaml at the repository root: the OpenAPI document the app serves at
/openapi.json, committed for readers and tools that want a file (the original
service linked one). tests/e2e/test_original_contract.py checks that the file
matches what the running API serves.

    python -m app.openapi_doc --write   # regenerate openapi.yaml
    python -m app.openapi_doc --check   # exit 1 if it is out of date
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from cryptography.fernet import Fernet

from app.config_fields import PROJECT_ROOT

OPENAPI_FILE = PROJECT_ROOT / "openapi.yaml"
HEADER = (
    "# Generated from the code by `python -m app.openapi_doc --write` (`make openapi`);\n"
    "# do not edit. The API serves the same document at /openapi.json.\n"
)


def served_document() -> dict[str, Any]:
    """The document exactly as the app serves it, whatever the local settings."""
    from app import create_app

    # The document does not depend on settings; placeholders keep a developer's
    # .env (or its absence) out of it.
    app = create_app(
        {
            "APP_ENV": "test",
            "LOG_LEVEL": "WARNING",
            "JWT_SECRET": "openapi-" + "x" * 40,
            "SECRETS_KEY": Fernet.generate_key().decode(),
        }
    )
    response = app.test_client().get("/openapi.json")
    if response.status_code != 200:
        raise RuntimeError(f"/openapi.json answered {response.status_code}")
    document: dict[str, Any] = response.get_json()
    return document


def render(document: dict[str, Any]) -> str:
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    return HEADER + body


def main(argv: list[str]) -> int:
    fresh = render(served_document())
    if argv[1:] == ["--write"]:
        OPENAPI_FILE.write_text(fresh)
        return 0
    if argv[1:] == ["--check"]:
        current = OPENAPI_FILE.read_text() if OPENAPI_FILE.exists() else ""
        if current != fresh:
            print("openapi.yaml is out of date: make openapi")
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
