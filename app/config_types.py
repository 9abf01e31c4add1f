"""How setting values are written: durations with units, comma lists, and the
readable message a set of bad settings turns into.

Durations: `300s`, `5m`, `1h`, `300000ms`, or a bare number. A bare number
means what it meant where the variable comes from: milliseconds for the
original service's `MAX_PROVISIONING_TIME` and `STEP_TIMEOUT`, seconds for
this project's own settings. Values set from Python (overrides, tests) are the
attribute itself, always seconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator
from pydantic_core import ErrorDetails
from pydantic_settings import NoDecode

BareUnit = Literal["ms", "s"]

_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h)?")
_SECONDS_PER = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_EXAMPLES = "e.g. 300s, 5m, 300000ms"


class ConfigError(RuntimeError):
    """One or more settings are missing or invalid; the message names each."""


def format_seconds(value: float) -> str:
    """300.0 -> '300s', 0.06 -> '0.06s': how limits are shown in messages."""
    return f"{value:g}s"


def _uncommented(raw: str) -> str:
    # `300000  # 5 minutes`: the original's .env carries inline comments, which
    # docker's env_file (unlike a shell or python-dotenv) passes on verbatim.
    return re.sub(r"\s+#.*$", "", raw).strip()


def parse_duration(raw: object, bare: BareUnit) -> float:
    """Seconds, from a duration as written in the environment."""
    if isinstance(raw, bool):
        raise ValueError(f"not a duration ({_EXAMPLES})")
    if isinstance(raw, int | float):
        return float(raw)  # set from Python: already the attribute, in seconds
    if not isinstance(raw, str):
        raise ValueError(f"not a duration ({_EXAMPLES})")
    match = _DURATION.fullmatch(_uncommented(raw))
    if match is None:
        raise ValueError(f"not a duration ({_EXAMPLES}; units ms, s, m, h)")
    return float(match["number"]) * _SECONDS_PER[match["unit"] or bare]


def _bare_number(raw: object) -> str | None:
    if isinstance(raw, str) and re.fullmatch(r"\d+(\.\d+)?", _uncommented(raw)):
        return _uncommented(raw)
    return None


def _too_short(raw: object, bare: BareUnit, seconds: float, minimum: float) -> str:
    number = _bare_number(raw)
    if bare == "ms" and number is not None:
        # The one ambiguous case: `60` meant seconds to someone used to this
        # project, milliseconds to the original's users. Neither guess is safe.
        return (
            f"a bare number is milliseconds, as in the original service, so this is "
            f"{format_seconds(seconds)}, below the minimum {format_seconds(minimum)}; "
            f"write {number}s if you meant seconds"
        )
    return f"{format_seconds(seconds)} is below the minimum {format_seconds(minimum)}"


@dataclass(frozen=True)
class DurationCheck:
    """Parses and bounds one duration setting; the README table reads its fields."""

    bare: BareUnit
    minimum: float
    maximum: float
    allow_zero: bool = False

    def __call__(self, raw: object) -> float:
        seconds = parse_duration(raw, self.bare)
        if self.allow_zero and seconds == 0:
            return seconds
        if seconds < self.minimum:
            raise ValueError(_too_short(raw, self.bare, seconds, self.minimum))
        if seconds > self.maximum:
            limit = format_seconds(self.maximum)
            raise ValueError(f"{format_seconds(seconds)} is above the maximum {limit}")
        return seconds


HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY


def _duration(bare: BareUnit, minimum: float, maximum: float, allow_zero: bool = False) -> Any:
    return Annotated[float, BeforeValidator(DurationCheck(bare, minimum, maximum, allow_zero))]


# Floats of seconds, written with a unit (`30s`, `5m`) or bare.
Seconds = _duration("s", 0.001, WEEK)
SecondsOrOff = _duration("s", 0.001, WEEK, allow_zero=True)  # 0 turns the feature off
# The original service's two timeouts: bare numbers are milliseconds, as its users wrote them.
JobDeadline = _duration("ms", 1.0, DAY)
StepTimeout = _duration("ms", 1.0, HOUR)


def _split_commas(raw: object) -> object:
    if isinstance(raw, str):
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    return raw


# Comma-separated in the environment (`a, b`), a tuple on the settings object.
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_commas)]


def _rate_limit(raw: object) -> object:
    from limits import parse_many

    if isinstance(raw, str):
        try:
            parse_many(raw)
        except ValueError:
            raise ValueError("not a rate limit: write e.g. `10 per hour` or `5/minute`") from None
    return raw


# flask-limiter notation, checked at start rather than at the first request.
RateLimit = Annotated[str, BeforeValidator(_rate_limit)]


_FRIENDLY = {
    "bool_parsing": "not a boolean: use true or false (also yes/no, on/off, 1/0)",
    "bool_type": "not a boolean: use true or false (also yes/no, on/off, 1/0)",
    "int_parsing": "not a whole number",
    "int_from_float": "not a whole number",
    "float_parsing": "not a number",
    "finite_number": "not a finite number",
    "extra_forbidden": "not a setting",
}


def _reason(error: ErrorDetails) -> str:
    if error["type"] in _FRIENDLY:
        return _FRIENDLY[error["type"]]
    return error["msg"].removeprefix("Value error, ")


def describe_errors(
    errors: Iterable[ErrorDetails],
    secret: Callable[[str], bool],
    written_as: Callable[[str], str],
) -> list[tuple[str, str]]:
    """(setting, problem) for each pydantic error, the problem naming the variable
    as the user wrote it (an alias, maybe); never echoes a secret."""
    problems = []
    for error in errors:
        field = str(error["loc"][0]) if error["loc"] else "settings"
        name = written_as(field)
        value = error.get("input")
        shown = f"={value!r}" if isinstance(value, str | int | float) and not secret(name) else ""
        problems.append((field, f"{name}{shown}: {_reason(error)}"))
    return problems


def format_problems(problems: list[str]) -> str:
    count = len(problems)
    head = "1 invalid setting" if count == 1 else f"{count} invalid settings"
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return f"{head} (environment or .env):\n{lines}"
