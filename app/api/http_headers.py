"""Standard HTTP headers the API answers with: ``Link`` on paginated lists
(RFC 8288) and ``ETag``/``If-Match`` on a department (RFC 9110)."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlencode

from flask import request


def link_header(total: int, page: int, per_page: int) -> str:
    """``first``, ``prev``, ``next`` and ``last`` page URLs, keeping the other query
    arguments, so clients can walk a list without computing page numbers."""
    last = max(1, -(-total // per_page))
    pages = {"first": 1, "last": last}
    if page > 1:
        pages["prev"] = min(page - 1, last)
    if page < last:
        pages["next"] = page + 1
    links = [f'<{_page_url(number, per_page)}>; rel="{rel}"' for rel, number in pages.items()]
    return ", ".join(links)


def _page_url(page: int, per_page: int) -> str:
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k not in ("page", "perPage")}
    args.update(page=page, perPage=per_page)
    return f"{request.base_url}?{urlencode(args)}"


def paginated(key: str, rows: list[Any], total: int, args: dict[str, Any]) -> Any:
    """A list page: the rows under ``key``, ``total``, ``page``, ``perPage`` and a Link header."""
    page, per_page = args["page"], args["perPage"]
    body = {key: rows, "total": total, "page": page, "perPage": per_page}
    return body, 200, {"Link": link_header(total, page, per_page)}


def etag_of(representation: dict[str, Any]) -> str:
    """A strong validator of the representation a GET returns: any change to what the
    client saw (configuration, status, drift) changes it."""
    canonical = json.dumps(representation, sort_keys=True, default=str).encode()
    return f'"{hashlib.sha256(canonical).hexdigest()[:32]}"'


def if_match_allows(current_etag: str) -> bool:
    """No If-Match: no precondition (clients of earlier releases send none)."""
    if "If-Match" not in request.headers:
        return True
    return request.if_match.contains(current_etag.strip('"'))
