"""Standard Webhooks signatures, checked with the reference `standardwebhooks` library."""

from __future__ import annotations

import base64
import json
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from app.config_rules import _webhook_secrets_ok
from app.domain.webhook_signing import (
    InvalidSecret,
    key_bytes,
    new_secret,
    secret_texts,
    signed_headers,
    verify_legacy,
)

BODY = json.dumps({"id": "evt-1", "state": "COMPLETED"}).encode()


def test_the_library_verifies_what_we_sign() -> None:
    secret = new_secret()
    headers = signed_headers("evt-1", BODY, [secret])
    assert Webhook(secret).verify(BODY, headers) == {"id": "evt-1", "state": "COMPLETED"}
    assert headers["webhook-signature"].startswith("v1,")
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "evt-2"})


def test_a_stale_timestamp_is_refused_by_receivers() -> None:
    secret = new_secret()
    headers = signed_headers("evt-1", BODY, [secret], timestamp=int(time.time()) - 3600)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, headers)


def test_every_secret_of_a_rotation_signs() -> None:
    new, old = new_secret(), "a-plain-legacy-secret-" + "x" * 20
    headers = signed_headers("evt-1", BODY, secret_texts(f"{new} {old}", "unused"))
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(BODY, headers)
    Webhook(old.encode()).verify(BODY, headers)  # a plain secret is the key's bytes
    # The deprecated header: the first secret's text, as before.
    assert verify_legacy(new.encode(), headers["X-Webhook-Signature"], BODY)
    assert not verify_legacy(old.encode(), headers["X-Webhook-Signature"], BODY)


def test_without_a_secret_one_is_derived_from_secrets_key() -> None:
    first, second = secret_texts("", "key-a"), secret_texts("", "key-b")
    assert len(first) == 1 and first != second and first == secret_texts("", "key-a")


def test_bad_secrets_are_refused() -> None:
    with pytest.raises(InvalidSecret):
        key_bytes("whsec_not*base64")
    with pytest.raises(InvalidSecret):
        key_bytes("whsec_" + base64.b64encode(b"short").decode())
    assert not _webhook_secrets_ok("whsec_%%%")
    assert not _webhook_secrets_ok(f"{new_secret()} too-short")
    assert _webhook_secrets_ok(f"{new_secret()} {'p' * 32}") and _webhook_secrets_ok("")
