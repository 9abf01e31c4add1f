"""A token's signature is checked once per process, not on every request.

Clients poll with the same token for hours; flask-jwt-extended parsed it three
times and checked its HMAC on every request, the largest single cost of a status
read after the read itself (issue 16's profile: 8 % of the API's CPU). The result
of that check depends only on the token's bytes and the key, so it is kept, keyed
by both. What can change is re-checked on every request as before: expiry here
(a kept token past its `exp` is decoded afresh, so it fails exactly as an
uncached one does), and revocation, role, lifetime and incarnation in the
loaders `verify_jwt_in_request` runs after decoding (app/api/auth.py). Only
tokens that verified are kept, so garbage cannot fill the cache, and it is
bounded: full, it starts over.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from flask import current_app
from flask_jwt_extended import JWTManager

MAX_KEPT = 4096


class CachingJWTManager(JWTManager):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._verified: dict[tuple[str, str], dict[str, Any]] = {}
        super().__init__(*args, **kwargs)

    def _decode_jwt_from_config(
        self, encoded_token: str, csrf_value: Any = None, allow_expired: bool = False
    ) -> dict[str, Any]:
        if csrf_value is not None or allow_expired:  # neither is how the API decodes
            return dict(super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired))
        key = (str(current_app.config["JWT_SECRET_KEY"]), encoded_token)
        kept = self._verified.get(key)
        if kept is not None and _unexpired(kept):
            return dict(kept)  # a copy: the request may not change what is kept
        claims = super()._decode_jwt_from_config(encoded_token)
        if isinstance(claims.get("exp"), int):  # a token that never expires is not kept
            if len(self._verified) >= MAX_KEPT:
                self._verified.clear()
            self._verified[key] = dict(claims)
        return dict(claims)


def _unexpired(claims: dict[str, Any]) -> bool:
    """PyJWT's rule with flask-jwt-extended's default leeway of 0: valid while
    exp > now. `nbf` needs no second look: it was passed when the token was kept."""
    leeway = current_app.config["JWT_DECODE_LEEWAY"]
    if isinstance(leeway, timedelta):
        leeway = leeway.total_seconds()
    return bool(claims["exp"] > time.time() - leeway)
