"""HTTP errors in flask-smorest's JSON shape, typed so that code after them is known
to be unreachable."""

from __future__ import annotations

from typing import Any, NoReturn

from flask_smorest import abort


def fail(status: int, **kwargs: Any) -> NoReturn:
    abort(status, **kwargs)
    raise AssertionError("abort() returned")  # pragma: no cover - abort always raises
