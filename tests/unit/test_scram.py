"""The SCRAM-SHA-256 verifiers sent instead of plain passwords (RFC 5802/7677)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from app.providers.postgres_access import scram_verifier

# RFC 7677 section 3: user "user", password "pencil".
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
AUTH_MESSAGE = (
    b"n=user,r=rOprNGfwEbeRWgbNEkqO,"
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
)
CLIENT_PROOF = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
SERVER_SIGNATURE = base64.b64decode("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def _keys(verifier: str) -> tuple[int, bytes, bytes, bytes]:
    scheme, params, keys = verifier.split("$")
    assert scheme == "SCRAM-SHA-256"
    iterations, salt = params.split(":")
    stored, server = keys.split(":")
    decode = base64.b64decode
    return int(iterations), decode(salt), decode(stored), decode(server)


def test_the_verifier_accepts_the_rfc_7677_exchange() -> None:
    """What PostgreSQL does with it: checks the client's proof against StoredKey
    and signs with ServerKey. Both must match the RFC's own messages."""
    iterations, salt, stored_key, server_key = _keys(scram_verifier("pencil", SALT))
    assert (iterations, salt) == (4096, SALT)
    client_signature = hmac.new(stored_key, AUTH_MESSAGE, hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(CLIENT_PROOF, client_signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key
    assert hmac.new(server_key, AUTH_MESSAGE, hashlib.sha256).digest() == SERVER_SIGNATURE


def test_the_verifier_does_not_carry_the_password_and_is_salted_afresh() -> None:
    first, second = scram_verifier("pencil-sharpener"), scram_verifier("pencil-sharpener")
    assert first != second  # a new random salt each time
    assert "pencil" not in first
    assert scram_verifier("other", SALT) != scram_verifier("pencil", SALT)
