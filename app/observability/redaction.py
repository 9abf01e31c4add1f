"""Scrubbing secret-shaped text out of log records.

Secrets are never logged on purpose; this is defence in depth against the one
f-string or exception message that carries a password or a token anyway.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[REDACTED]"
# Values shorter than this are too likely to occur by chance in ordinary text.
MIN_LITERAL_LENGTH = 8

SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|authori[sz]ation|credential|private[_-]?key"
    r"|cookie|fernet)",
    re.IGNORECASE,
)
# (pattern, replacement): each keeps the harmless prefix so the line stays readable.
#
# Every pattern runs on caller-controlled text (request paths, headers, bodies
# quoted in errors), so each must take linear time whatever the input: a match
# may only start where a run of its characters starts (the negative lookbehind),
# runs are consumed possessively (no backtracking into them), and the parts a
# match must look ahead through are bounded. A pattern that can restart inside a
# run, or backtrack over an unbounded one, took 76 s on "/" + "token" * 700.
_KEY_CHARS = r"[\w-]"
_KEY_WORDS = r"(?:pass(?:word|wd)|secret|token|api[_-]?key|credential)"
VALUE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host, and scheme://:password@host (Redis URLs name no user)
    (
        re.compile(
            r"(?<![a-z0-9+.-])([a-z][a-z0-9+.-]{0,31}+://[^:/@\s]{0,256}+:)[^@\s]{1,1024}+(@)",
            re.IGNORECASE,
        ),
        rf"\1{REDACTED}\2",
    ),
    (
        re.compile(r"(?<![\w-])(bearer\s{1,16}+)[A-Za-z0-9._~+/=-]++", re.IGNORECASE),
        rf"\1{REDACTED}",
    ),
    (
        re.compile(r"(?<![\w-])eyJ[\w-]++\.eyJ[\w-]++\.[\w-]*+", re.ASCII),
        REDACTED,
    ),
    (re.compile(r"(?<![\w-])gAAAAA[\w-]{20,}+={0,2}+", re.ASCII), REDACTED),  # Fernet tokens
    # password=..., "client_secret": "...", api_key: ... The lookahead finds the
    # secret word within the key's own run (at most 128 characters) without
    # committing to where it is.
    (
        re.compile(
            rf"""(?<!{_KEY_CHARS})(["']?(?={_KEY_CHARS}{{0,128}}?{_KEY_WORDS})"""
            rf"""{_KEY_CHARS}{{1,128}}+["']?\s{{0,16}}+[:=]\s{{0,16}}+["']?)"""
            r"""([^"'\s,;&}\]]++)""",
            re.IGNORECASE,
        ),
        rf"\1{REDACTED}",
    ),
)


# Text none of the patterns can match lacks all of these. Checked with `in` on the
# lowered text, nearly every line (each request's access log line among them)
# skips the five scans, which cost 4 % of the API's CPU per status read (issue
# 16's profile); one regex of them all cost as much as the five. Non-ASCII text
# takes the scans: case-insensitive matching has Unicode equivalents (the Kelvin
# sign for k) that lowering ASCII does not show.
_CASED_MARKERS = ("://", "eyJ", "gAAAAA")
_LOWER_MARKERS = (
    "bearer", "password", "passwd", "secret", "token", "apikey", "api_key", "api-key",
    "credential",
)  # fmt: skip


def may_hold_secret(text: str) -> bool:
    if not text.isascii() or any(marker in text for marker in _CASED_MARKERS):
        return True
    lowered = text.lower()
    return any(marker in lowered for marker in _LOWER_MARKERS)


# Attributes every LogRecord has: never treated as user-supplied extras.
RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


class Redactor:
    """Redacts secret-shaped values and the literal secrets it was given."""

    def __init__(self, literals: Iterable[str] = ()) -> None:
        self._literals = sorted(
            {value for value in literals if value and len(value) >= MIN_LITERAL_LENGTH},
            key=len,
            reverse=True,  # longest first, so a secret containing another goes whole
        )

    def text(self, value: str) -> str:
        for literal in self._literals:
            value = value.replace(literal, REDACTED)
        if not may_hold_secret(value):
            return value
        for pattern, replacement in VALUE_PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    def strings(self, value: Any) -> Any:
        """Every string inside ``value`` (dicts, lists) redacted; keys and shape kept."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.strings(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.strings(item) for item in value]
        return value

    def value(self, key: str, value: Any) -> Any:
        if SECRET_KEY.search(key) and value not in (None, ""):
            return REDACTED
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(key, item) for item in value]
        return value


class RedactingFilter(logging.Filter):
    """Rewrites the record in place before any formatter sees it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redactor.text(_message(record))
        record.args = None
        if record.exc_info:
            # Tracebacks quote values; format once here, redacted, and drop the
            # original so no formatter renders it again unredacted.
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self._redactor.text(text)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self._redactor.text(record.exc_text)
        for key in set(vars(record)) - RECORD_ATTRIBUTES:
            setattr(record, key, self._redactor.value(key, getattr(record, key)))
        return True


def _message(record: logging.LogRecord) -> str:
    """A filter's exception would reach the code that logged: never raise here."""
    try:
        return record.getMessage()
    except Exception:
        return f"{record.msg} {record.args!r}"
