"""openapi.yaml is regenerated with the code: a change to the API without
`make openapi` fails here, before the end-to-end check against the live API."""

from __future__ import annotations

from app.openapi_doc import OPENAPI_FILE, render, served_document


def test_openapi_yaml_is_the_document_the_app_serves() -> None:
    assert render(served_document()) == OPENAPI_FILE.read_text(), (
        "openapi.yaml is stale: run `make openapi` and commit it"
    )
