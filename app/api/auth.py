"""JWT bearer auth: who may do what.

Claims: email, role (admin | department), departmentId and departmentIncarnation
(department tokens), iat, exp (at most JWT_MAX_TTL_DAYS after iat), jti. Every
request also checks the Redis revocation list (app/api/token_blocklist.py).
Admins may do everything; a department token may only read its own department.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, request
from flask.typing import ResponseReturnValue
from flask_jwt_extended import create_access_token, get_jwt, verify_jwt_in_request

from app import config
from app.api.edge import charge_auth_failure
from app.api.problems import problem
from app.api.token_blocklist import is_revoked
from app.api.verified_tokens import CachingJWTManager
from app.domain.services.incarnations import current_incarnation

ROLES = ("admin", "department")
F = TypeVar("F", bound=Callable[..., Any])


class Forbidden(Exception):
    pass


def init_auth(app: Flask, secret: str) -> None:
    app.config.update(
        JWT_SECRET_KEY=secret,
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],  # never "none", never asymmetric confusion
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ERROR_MESSAGE_KEY="message",
        # The original service's tokens carry email, role, departmentId and exp,
        # no `sub`: identify by email so its issuers' tokens keep working.
        JWT_IDENTITY_CLAIM="email",
    )
    manager = CachingJWTManager(app)

    def unauthorized(reason: str) -> ResponseReturnValue:
        wait = charge_auth_failure()
        if wait is not None:
            return problem(
                429, "too many failed authentications", headers={"Retry-After": str(wait)}
            )
        return problem(401, reason, headers={"WWW-Authenticate": "Bearer"})

    manager.unauthorized_loader(unauthorized)
    manager.invalid_token_loader(unauthorized)
    manager.expired_token_loader(lambda _h, _p: unauthorized("Token has expired"))
    manager.revoked_token_loader(lambda _h, _p: unauthorized("Token has been revoked"))
    manager.needs_fresh_token_loader(lambda _h, _p: unauthorized("Fresh token required"))
    manager.token_verification_failed_loader(lambda _h, _p: unauthorized("Invalid claims"))
    manager.token_verification_loader(lambda _h, payload: _token_acceptable(payload))
    manager.token_in_blocklist_loader(lambda _h, payload: is_revoked(payload))

    @app.errorhandler(Forbidden)
    def forbidden(exc: Forbidden) -> ResponseReturnValue:
        return problem(403, str(exc))


class TokenRefused(ValueError):
    """A token that may not be minted (its lifetime is over the bound)."""


def max_ttl() -> timedelta:
    return timedelta(days=config.current().JWT_MAX_TTL_DAYS)


def _token_acceptable(payload: dict[str, Any]) -> bool:
    """A token missing its role, email or expiry is no token at all (401); so is
    one made to live longer than JWT_MAX_TTL_DAYS (minted before the bound, or
    elsewhere with the key), or a department token of an earlier incarnation of
    its department."""
    if not payload.get("email") or "role" not in payload:
        return False
    if not isinstance(payload.get("exp"), int) or not _lifetime_bounded(payload):
        return False
    if payload["role"] != "department":
        return True
    department_id = payload.get("departmentId")
    if not department_id:
        return False
    # The original service's department tokens name no incarnation: they open no
    # existing department and must be re-issued with `flask token create`.
    return payload.get("departmentIncarnation") == current_incarnation(str(department_id))


def _lifetime_bounded(payload: dict[str, Any]) -> bool:
    """exp at most JWT_MAX_TTL_DAYS after iat. The original service's issuers set
    no iat (its documented payload is email, role, departmentId, exp): such a
    token is held to the same bound from now, and a user revocation refuses it
    whenever it was issued (token_blocklist reads a missing iat as 0)."""
    issued = payload.get("iat")
    if issued is None:
        issued = int(time.time())
    elif not isinstance(issued, int):
        return False
    return bool(payload["exp"] - issued <= max_ttl().total_seconds())


def mint_token(email: str, role: str, department_id: str | None, ttl: timedelta) -> str:
    """Raises TokenRefused for a lifetime over JWT_MAX_TTL_DAYS. A department token
    names the department's current incarnation (none yet: it never opens one)."""
    if ttl > max_ttl():
        raise TokenRefused(f"a token may live at most {config.current().JWT_MAX_TTL_DAYS:g} days")
    claims: dict[str, Any] = {"email": email, "role": role}
    if department_id:
        claims["departmentId"] = department_id
        claims["departmentIncarnation"] = current_incarnation(department_id)
    return create_access_token(identity=email, additional_claims=claims, expires_delta=ttl)


def current_claims() -> dict[str, Any]:
    return dict(get_jwt())


_VERIFIED = "provisioning.token_verified"


def verify_token_once() -> None:
    """verify_jwt_in_request, once per request: the limiter's per-user key and
    the role check both need the verified token, and each verification asks
    Redis (revocation) and, for a department token, the database (incarnation).
    Marked on the request's own environ: `g` may outlive a request (an app
    context pushed around several, as tests do), the environ never does."""
    if request.environ.get(_VERIFIED):
        return
    verify_jwt_in_request()
    request.environ[_VERIFIED] = True


def _check_role(allowed: tuple[str, ...]) -> dict[str, Any]:
    verify_token_once()
    claims = current_claims()
    if claims.get("role") not in ROLES:
        raise Forbidden(f"unknown role {claims.get('role')!r}")
    if claims["role"] not in allowed:
        raise Forbidden(f"role {claims['role']!r} may not do this")
    return claims


def admin_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _check_role(("admin",))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def reader_required(view: F) -> F:
    """Admins, or department tokens (the view narrows to their own department)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _check_role(ROLES)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def ensure_department_access(department_id: str) -> None:
    claims = current_claims()
    if claims.get("role") == "department" and claims.get("departmentId") != department_id:
        raise Forbidden("this token is scoped to another department")


def scoped_department() -> str | None:
    """The only department a department token may see; None for admins."""
    claims = current_claims()
    return claims.get("departmentId") if claims.get("role") == "department" else None


def actor() -> str | None:
    return current_claims().get("email")
