"""The API keeps the tokens whose signature it checked (app/api/verified_tokens.py):
what it keeps must never let through a token an uncached check would refuse."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from flask import Flask
from flask_jwt_extended import create_access_token, decode_token
from flask_jwt_extended import jwt_manager as upstream

from app.api import verified_tokens
from app.api.verified_tokens import CachingJWTManager

KEY = "k" * 48


@pytest.fixture
def app() -> Iterator[Flask]:
    app = Flask(__name__)
    app.config.update(JWT_SECRET_KEY=KEY, JWT_IDENTITY_CLAIM="email")
    CachingJWTManager(app)
    with app.app_context():
        yield app


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Tokens whose signature flask-jwt-extended checked."""
    seen: list[str] = []
    original = upstream._decode_jwt

    def counting(**kwargs: Any) -> dict[str, Any]:
        seen.append(kwargs["encoded_token"])
        return original(**kwargs)

    monkeypatch.setattr(upstream, "_decode_jwt", counting)
    return seen


def _token(ttl: timedelta = timedelta(hours=1), email: str = "a@example.com") -> str:
    return create_access_token(identity=email, expires_delta=ttl)


def test_a_token_is_verified_once_and_each_caller_gets_its_own_copy(
    app: Flask, verifications: list[str]
) -> None:
    token = _token()
    first = decode_token(token)
    first["email"] = "changed@example.com"
    again = decode_token(token)
    assert again["email"] == "a@example.com"
    assert verifications == [token]


def test_a_kept_token_fails_as_expired_once_its_time_is_up(app: Flask) -> None:
    token = _token(ttl=timedelta(seconds=1))
    decode_token(token)
    time.sleep(1.1)
    with pytest.raises(jwt.ExpiredSignatureError):
        decode_token(token)


def test_a_kept_token_is_checked_again_under_another_key(app: Flask) -> None:
    token = _token()
    decode_token(token)
    app.config["JWT_SECRET_KEY"] = "another-" + "k" * 40
    with pytest.raises(jwt.InvalidSignatureError):
        decode_token(token)


def test_the_same_claims_with_a_forged_signature_are_refused(app: Flask) -> None:
    token = _token()
    decode_token(token)
    header, claims, _ = token.split(".")
    forged = jwt.encode(jwt.decode(token, options={"verify_signature": False}), "guess" * 10)
    assert forged.split(".")[:2] == [header, claims]
    with pytest.raises(jwt.InvalidSignatureError):
        decode_token(forged)


def test_refused_tokens_are_not_kept_and_the_cache_stays_bounded(
    app: Flask, monkeypatch: pytest.MonkeyPatch, verifications: list[str]
) -> None:
    monkeypatch.setattr(verified_tokens, "MAX_KEPT", 3)
    with pytest.raises(jwt.DecodeError):
        decode_token("not.a.token")
    tokens = [_token(email=f"user{n}@example.com") for n in range(5)]
    for token in tokens:
        decode_token(token)
    manager = app.extensions["flask-jwt-extended"]
    assert 0 < len(manager._verified) <= 3
    decode_token(tokens[-1])  # kept: not verified again
    assert verifications.count(tokens[-1]) == 1
