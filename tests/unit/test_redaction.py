"""The redactor: what it hides, and that it takes linear time on any input.

Every request path and many headers pass through it, so a pattern that
backtracks lets one anonymous request hold an API thread for minutes.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.observability.redaction import REDACTED, VALUE_PATTERNS, Redactor, may_hold_secret

# Inputs shaped to make a backtracking pattern restart at every position.
HOSTILE_UNITS = [
    "token",
    "password=",
    "'password'",
    "x-api-key:",
    "credential-",
    "eyJ-",
    "eyJa.eyJ",
    "a://b:",
    "a.b+c-",
    "bearer ",
    "gAAAAA-",
    " ",
]


def _seconds(redactor: Redactor, text: str) -> float:
    """Best of five: the least disturbed run, so a busy machine does not look like growth."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        redactor.text(text)
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("unit", HOSTILE_UNITS)
def test_hostile_text_is_redacted_in_linear_time(unit: str) -> None:
    redactor = Redactor(["a-literal-secret"])
    small = _seconds(redactor, unit * (2048 // len(unit)))
    large = _seconds(redactor, unit * (32768 // len(unit)))
    # The old patterns took 7 s on 2 KB of "token" and grew with the cube of
    # the length; linear ones take milliseconds and grow 16x for 16x the text.
    # A ratio, not a wall-clock bound: quadratic growth would be 256x, cubic 4096x.
    assert large < max(small, 0.005) * 64  # floor: a scheduling hiccup is not growth


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://user:hunter2secret@host/db", f"postgresql://user:{REDACTED}@host/db"),
        ("Authorization: Bearer abc.def-ghi", f"Authorization: Bearer {REDACTED}"),
        ("t eyJhbGciOi.eyJzdWIiOi.sig_part", f"t {REDACTED}"),
        ("k gAAAAABkY2hhbmdlbWVpbmFsb25nZmVybmV0dG9rZW4=", f"k {REDACTED}"),
        ("password=hunter2 other=1", f"password={REDACTED} other=1"),
        ('{"client_secret": "s3cr3t"}', f'{{"client_secret": "{REDACTED}"}}'),
        ("api_key: abc123", f"api_key: {REDACTED}"),
        ("a=password=xyz", f"a=password={REDACTED}"),
        ("N8N_API_KEY=abcd", f"N8N_API_KEY={REDACTED}"),
        ("the a-literal-secret here", f"the {REDACTED} here"),
        ("GET /api/departments?page=2", "GET /api/departments?page=2"),
    ],
)
def test_secret_shaped_values_are_redacted(text: str, expected: str) -> None:
    assert Redactor(["a-literal-secret"]).text(text) == expected


# Pieces of every pattern, so generated text often almost matches one.
_PIECES = st.sampled_from(
    [
        *HOSTILE_UNITS,
        "@",
        "=",
        ":",
        '"',
        "Bearer",
        "eyJ",
        ".",
        "gAAAAA",
        "x" * 20,
        "_",
        "/",
        "A",
        "PASSWD",
        "Api_Key",
        "SECRET",
        "\u212a",
        "\u017f",
        "apikey",
        "passwd",
        "cREDENTIAL",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=12).map("".join))
def test_text_skipped_as_harmless_is_text_no_pattern_redacts(text: str) -> None:
    """The markers decide whether the patterns run at all: they may never pass
    over text one of them would redact."""
    if not may_hold_secret(text):
        assert not any(pattern.search(text) for pattern, _ in VALUE_PATTERNS), text
        assert Redactor().text(text) == text


@pytest.mark.parametrize(
    "key",
    ["PassWord", "PASSWD", "client_secret", "X-Token", "APIKEY", "Api_Key", "api-key",
     "Credential", "to\u212aen"],
)  # fmt: skip
def test_every_spelling_of_a_secret_key_is_redacted(key: str) -> None:
    assert Redactor().text(f"{key}=hunter2 next") == f"{key}=[REDACTED] next"


@pytest.mark.parametrize(
    "text",
    ["Authorization: BEARER abc.def", "redis://:pw12345@h:6379/0",
     "eyJa1.eyJb2.c3", "gAAAAA" + "B" * 30],
)  # fmt: skip
def test_every_shape_of_a_secret_value_is_redacted(text: str) -> None:
    assert REDACTED in Redactor().text(text)
