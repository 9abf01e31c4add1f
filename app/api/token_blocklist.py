"""Revoked API tokens, kept in Redis so every API process refuses them at once.

Two kinds of entry, each expiring when no token it covers could still be valid:
- ``jti:<id>``: one token, until its own expiry (``token_id``);
- ``email:<address>``: every token of that user issued at or before the stored
  time (a leaked laptop, a person leaving), for JWT_MAX_TTL_DAYS.
Both are read in one round trip on every authenticated request.
"""

from __future__ import annotations

import hashlib
import json
import time
from functools import lru_cache
from typing import Any, cast

import redis
from werkzeug.exceptions import ServiceUnavailable

from app import config

PREFIX = "po:revoked:"


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _redis() -> redis.Redis:
    return _client(config.current().REDIS_URL)


def _max_ttl_seconds() -> int:
    return int(config.current().JWT_MAX_TTL_DAYS * 86400)


def revoke_token(jti: str, expires_at: int) -> None:
    remaining = max(1, expires_at - int(time.time()))
    _redis().set(f"{PREFIX}jti:{jti}", "1", ex=remaining)


def revoke_user(email: str) -> int:
    """Revokes every token of ``email`` issued up to now; returns that time."""
    now = int(time.time())
    _redis().set(f"{PREFIX}email:{email.lower()}", str(now), ex=_max_ttl_seconds())
    return now


def token_id(payload: dict[str, Any]) -> str:
    """The token's ``jti``; the original service's tokens have none, so theirs is
    a digest of the whole payload (the same token, the same digest)."""
    jti = payload.get("jti")
    if jti:
        return str(jti)
    return "sha256-" + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def is_revoked(payload: dict[str, Any]) -> bool:
    keys = [
        f"{PREFIX}jti:{token_id(payload)}",
        f"{PREFIX}email:{str(payload.get('email')).lower()}",
    ]
    try:
        by_id, cutoff = cast(list[bytes | None], _redis().mget(keys))
    except redis.RedisError as exc:
        # Fail closed: without the list nobody can tell a revoked token from a good one.
        raise ServiceUnavailable("token revocation list unavailable; try again") from exc
    if by_id is not None:
        return True
    # A token without an issue time cannot show it is newer than the cutoff.
    return cutoff is not None and int(payload.get("iat", 0)) <= int(cutoff)
