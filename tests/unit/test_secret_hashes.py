"""OAuth client secret hashes: HMAC-SHA256 for new ones, earlier scrypt ones still valid."""

from __future__ import annotations

import secrets

from app.oauth.models import _b64, _scrypt, hash_secret, verify_secret


def test_a_new_hash_is_salted_hmac_and_verifies_only_its_secret() -> None:
    secret = secrets.token_urlsafe(32)
    first, second = hash_secret(secret), hash_secret(secret)
    assert first.startswith("hmac-sha256$") and first != second  # a salt each
    assert secret not in first
    assert verify_secret(secret, first) and verify_secret(secret, second)
    assert not verify_secret(secret + "x", first)
    assert not verify_secret(secret[:-1], first)


def test_a_hash_written_with_scrypt_before_still_verifies() -> None:
    secret, salt = secrets.token_urlsafe(32), secrets.token_bytes(16)
    n, r, p = 2**4, 8, 1  # its parameters are read from the hash itself
    legacy = "$".join(
        ("scrypt", str(n), str(r), str(p), _b64(salt), _b64(_scrypt(secret, salt, n, r, p)))
    )
    assert verify_secret(secret, legacy)
    assert not verify_secret(secret + "x", legacy)


def test_malformed_or_unknown_hashes_never_match() -> None:
    secret = "s"
    good = hash_secret(secret)
    for encoded in (
        "",
        "hmac-sha256",
        good + "$extra",
        "md5$abc$def",
        "scrypt$x$8$1$a$b",
        good.replace("hmac-sha256", "plain"),
    ):
        assert not verify_secret(secret, encoded), encoded
